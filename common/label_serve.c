/*
 * common/label_serve.c — `rlhf-label serve` (see label_serve.h): the HTTP side of the
 * labelling web page, on libmicrohttpd with one internal thread (requests are handled one
 * at a time, so the log and the in-memory state need no further locking).
 *
 * Routes (fixed strings: nothing in a URL is ever used as a path):
 *   GET  /app.js /style.css   the embedded static files (no token needed; /favicon.ico
 *                             is answered 204, empty)
 *   GET  /login               the login form;  POST /login {token}: sets the cookie
 *   GET  /                    the next item for this annotator (or "nothing left")
 *   POST /judge {id,label}    append a judgment (fields per mode: MODES below; rank mode
 *                             adds r1..rK, the place of each response)
 *   POST /undo                append an undo of this annotator's last judgment
 *   POST /logout              clears the cookie
 *   GET  /progress            counts per annotator, agreement (refreshes itself)
 *   GET  /api/next, /api/progress   the same as JSON, for scripts
 * Everything but the static files and /login needs a token: the cookie set by /login or
 * an "Authorization: Bearer TOKEN" header; without a valid one the answer is 401.
 * POST bodies are forms or JSON (label_req.h), at most LABEL_REQ_MAX_BODY bytes (413
 * beyond); a POST whose Origin header names another site is refused (403). A form post
 * is answered with a redirect (303) to the page, a JSON one with a JSON object; errors
 * are 400 (bad field), 404, 405, 409 (judged already, not this annotator's item,
 * nothing to undo), 415, 500 (the log write failed: later judgments get 503 until the
 * server is restarted).
 *
 * Which item an annotator sees: the first item of the file that they have not judged
 * (a skip counts, as in the terminal tool) and that fewer than K = --overlap other
 * annotators have judged (skips aside) or hold on their page (an item shown to someone
 * is held for them LEASE_SECONDS); items that others have started come first, so that
 * overlapping judgments complete and agreement can be measured early.
 *
 * A mode is one entry in MODES (its fields, how a request becomes a record, its item as
 * JSON) and one item template in label_page.c.
 */
#include "label_serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "label.h"
#include "label_page.h"
#include "label_req.h"
#include "util.h"

#define TOKEN_MIN 16
#define TOKEN_MAX 128
#define NAME_MAX_BYTES 64
#define LEASE_SECONDS 900
#define NOTE_LEN 256
#define COOKIE_NAME "rlhf_token"
#define CONNECTION_LIMIT 64
#define CONNECTION_TIMEOUT_S 60

typedef struct {
    char *name;
    char *token;
    size_t token_len;
    int cur;                    /* item on their page, or -1 */
    time_t cur_since;           /* when it was last shown (the hold) */
    int forced;                 /* item to show next (after an undo), or -1 */
    unsigned char *skipped_now; /* skipped since the server started: not shown again */
    char note[NOTE_LEN];        /* the last action's outcome, shown once */
} Annotator;

typedef struct Server Server;

/* How one mode's judge request becomes a log line (NULL with err: a 400), and its item
 * as JSON for /api/next. */
typedef char *(*JudgeFn)(const Server *s, const Annotator *a, const LabelItem *it,
                         const LabelReq *r, const char *time_iso, char *err);
typedef void (*ItemJsonFn)(json_t *o, const LabelItem *it);

typedef struct {
    const char *name;
    const char *const *fields; /* accepted by /judge */
    JudgeFn judge;
    ItemJsonFn item_json;
} ServeMode;

struct Server {
    LabelItems items;
    LabelLog log;
    LabelMode mode;
    const ServeMode *m;
    int overlap;
    Annotator *ann;
    int n_ann;
    const char *out_path;
    int out_fd;
    int *n_judged;           /* per item: annotators with a live judgment, skips aside */
    char broken[ERRBUF_LEN]; /* why the log cannot be written any more, or "" */
};

// ----------------------------------------------------------------------------
// modes

static char *judge_kind(const Server *s, const Annotator *a, const LabelItem *it, const LabelReq *r,
                        const char *time_iso, char *err) {
    const char *l = label_req_need(r, "label", err);
    if (!l) return NULL;
    int k = label_kind_parse(l);
    if (k < 0 || !label_kind_in_mode((LabelKind)k, s->mode)) {
        errf(err, "field label: \"%.20s\" is not one of %s", l,
             s->mode == LABEL_MODE_PAIR ? "A, B, tie, skip" : "up, down, skip");
        return NULL;
    }
    return label_record_judgment(it, s->mode, (LabelKind)k, a->name, time_iso);
}

static void item_json_pair(json_t *o, const LabelItem *it) {
    json_object_set_new(o, "a", json_string(it->a));
    json_object_set_new(o, "b", json_string(it->b));
}

static void item_json_thumbs(json_t *o, const LabelItem *it) {
    json_object_set_new(o, "response", json_string(it->a));
}

/* Rank mode: label "rank" with the places r1..rK (label_req_ranks checks them: every
 * response placed, 1..K, consistent), or "skip" without places. The record is the
 * terminal tool's (label_record_rank / label_record_judgment). */
static char *judge_rank(const Server *s, const Annotator *a, const LabelItem *it, const LabelReq *r,
                        const char *time_iso, char *err) {
    const char *l = label_req_need(r, "label", err);
    if (!l) return NULL;
    if (strcmp(l, "skip") == 0) {
        if (label_req_has_rank_field(r)) {
            errf(err,
                 "field label: a skip carries no places (r1..r%d); send label=rank to "
                 "save the ranking",
                 it->n_resp);
            return NULL;
        }
        return label_record_judgment(it, s->mode, LABEL_SKIP, a->name, time_iso);
    }
    if (strcmp(l, "rank") != 0) {
        errf(err, "field label: \"%.20s\" is not one of rank, skip", l);
        return NULL;
    }
    int ranks[LABEL_RANK_ITEM_MAX];
    if (label_req_ranks(r, it->n_resp, ranks, err)) return NULL;
    return label_record_rank(it, ranks, a->name, time_iso);
}

static void item_json_rank(json_t *o, const LabelItem *it) {
    json_t *arr = json_array();
    for (int i = 0; i < it->n_resp; i++) json_array_append_new(arr, json_string(it->resp[i]));
    json_object_set_new(o, "responses", arr);
}

_Static_assert(LABEL_REQ_RANK_MAX == LABEL_RANK_ITEM_MAX, "rank fields r1..r9 name every response");
static const char *const KIND_FIELDS[] = {"id", "label", NULL};
static const char *const RANK_FIELDS[] = {"id", "label", "r1", "r2", "r3", "r4",
                                          "r5", "r6",    "r7", "r8", "r9", NULL};
static const ServeMode MODES[] = {
    [LABEL_MODE_PAIR] = {"pair", KIND_FIELDS, judge_kind, item_json_pair},
    [LABEL_MODE_THUMBS] = {"thumbs", KIND_FIELDS, judge_kind, item_json_thumbs},
    [LABEL_MODE_RANK] = {"rank", RANK_FIELDS, judge_rank, item_json_rank},
};

// ----------------------------------------------------------------------------
// which item an annotator gets

static int item_done(const Server *s, const Annotator *a, int i) {
    return a->skipped_now[i] || label_log_live(&s->log, a->name, s->items.items[i].id) >= 0;
}

static void count_judged(Server *s) {
    memset(s->n_judged, 0, (size_t)s->items.n * sizeof(int));
    for (int j = 0; j < s->log.n; j++) {
        const LabelJudgment *jd = &s->log.j[j];
        if (jd->label == LABEL_SKIP || !label_log_is_live(&s->log, j)) continue;
        int i = label_items_find(&s->items, jd->id);
        if (i >= 0) s->n_judged[i]++;
    }
}

/* judgments of item i by others (a has none) plus others holding it on their page */
static int item_load(const Server *s, const Annotator *a, int i, time_t now) {
    int n = s->n_judged[i];
    for (int k = 0; k < s->n_ann; k++) {
        const Annotator *o = &s->ann[k];
        if (o != a && o->cur == i && now - o->cur_since < LEASE_SECONDS && !item_done(s, o, i)) n++;
    }
    return n;
}

static int item_open_to(const Server *s, const Annotator *a, int i, time_t now) {
    return !item_done(s, a, i) && item_load(s, a, i, now) < s->overlap;
}

static int pick_item(const Server *s, const Annotator *a, time_t now) {
    int best = -1, best_load = -1;
    for (int i = 0; i < s->items.n && best_load < s->overlap - 1; i++) {
        if (item_done(s, a, i)) continue;
        int load = item_load(s, a, i, now);
        if (load < s->overlap && load > best_load) {
            best = i;
            best_load = load;
        }
    }
    return best;
}

/* The item on a's page now (held for a from now on), or -1 when nothing is left. */
static int current_item(const Server *s, Annotator *a) {
    time_t now = time(NULL);
    if (a->forced >= 0) {
        a->cur = a->forced;
        a->forced = -1;
    } else if (a->cur < 0 || item_done(s, a, a->cur) || now - a->cur_since >= LEASE_SECONDS) {
        a->cur = pick_item(s, a, now);
    }
    a->cur_since = now;
    return a->cur;
}

static long count_done(const Server *s, const Annotator *a) {
    long n = 0;
    for (int i = 0; i < s->items.n; i++) n += item_done(s, a, i);
    return n;
}

// ----------------------------------------------------------------------------
// the log

/* Append one record (write + fsync) and apply it in memory; takes the line. Returns 0, or
 * the HTTP status of the failure with err: 500 when the write fails (the file may end in a
 * torn line now, so nothing more is written), 503 for every record after that. */
static int log_record(Server *s, char *line, char *err) {
    if (s->broken[0]) {
        free(line);
        errf(err, "the log cannot be written (%s); restart the server", s->broken);
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    }
    if (label_append_line(s->out_fd, line, s->out_path, err)) {
        snprintf(s->broken, sizeof(s->broken), "%s", err);
        free(line);
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    char why[ERRBUF_LEN];
    int rc = label_log_apply(&s->log, line, strlen(line) - 1, 0, 0, why);
    free(line);
    if (rc) fatal("internal error: the record just written does not read back: %s", why);
    count_judged(s);
    return 0;
}

// ----------------------------------------------------------------------------
// responses

/* One request: its body as it arrives, then what the handlers need. */
typedef struct {
    char *body;
    size_t n;
    struct MHD_Connection *c;
    int json;     /* answer in JSON (a JSON body, an Accept of JSON, or /api/) */
    LabelReq req; /* the decoded body of a POST */
} Ctx;

static enum MHD_Result send_buf(Ctx *x, int status, const char *ctype, char *body, size_t len,
                                enum MHD_ResponseMemoryMode mem, const char *location,
                                const char *cookie) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mem);
    if (!r) {
        if (mem == MHD_RESPMEM_MUST_FREE) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; frame-ancestors 'none'; form-action 'self'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    /* (not no-referrer: with it a browser sends "Origin: null" on form posts) */
    MHD_add_response_header(r, "Referrer-Policy", "same-origin");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (location) MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
    if (cookie) MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"rlhf-label\"");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, POST");
    enum MHD_Result rc = MHD_queue_response(x->c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_page(Ctx *x, int status, LabelPage *p, const char *cookie) {
    return send_buf(x, status, "text/html; charset=utf-8", p->s, p->n, MHD_RESPMEM_MUST_FREE, NULL,
                    cookie);
}

/* takes o */
static enum MHD_Result send_json(Ctx *x, int status, json_t *o, const char *cookie) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (!s) return MHD_NO;
    size_t n = strlen(s);
    return send_buf(x, status, "application/json", s, n, MHD_RESPMEM_MUST_FREE, NULL, cookie);
}

static enum MHD_Result send_redirect(Ctx *x, const char *to, const char *cookie) {
    return send_buf(x, MHD_HTTP_SEE_OTHER, "text/plain; charset=utf-8", (char *)"", 0,
                    MHD_RESPMEM_PERSISTENT, to, cookie);
}

static enum MHD_Result send_error(Ctx *x, int status, const char *msg) {
    if (x->json) return send_json(x, status, json_pack("{s:s}", "error", msg), NULL);
    LabelPage p = {0};
    if (status == MHD_HTTP_UNAUTHORIZED) label_page_login(&p, msg);
    else label_page_error(&p, status, msg);
    return send_page(x, status, &p, NULL);
}

/* The outcome of a judge or undo: a form post goes back to the page (which shows the
 * note), a JSON post gets the object. A conflict (409) from a form is a note too: a
 * double click or a stale tab is not worth an error page. */
static enum MHD_Result send_outcome(Ctx *x, Annotator *a, int status, const char *note, json_t *o) {
    if (x->json) {
        if (status != MHD_HTTP_OK) {
            json_decref(o);
            return send_json(x, status, json_pack("{s:s}", "error", note), NULL);
        }
        return send_json(x, status, o, NULL);
    }
    json_decref(o);
    if (status != MHD_HTTP_OK && status != MHD_HTTP_CONFLICT) return send_error(x, status, note);
    snprintf(a->note, sizeof(a->note), "%s", note);
    return send_redirect(x, "/", NULL);
}

// ----------------------------------------------------------------------------
// authentication

/* Compares in a time that depends on the stored token's length only (no early exit):
 * the answer time tells nothing about how much of a guess was right. */
static int token_equal(const char *want, size_t wn, const char *got, size_t gn) {
    unsigned diff = (unsigned)(wn ^ gn);
    for (size_t i = 0; i < wn; i++)
        diff |= (unsigned)((unsigned char)want[i] ^ (unsigned char)(i < gn ? got[i] : 0));
    return diff == 0;
}

static Annotator *token_find(Server *s, const char *tok) {
    size_t n = strnlen(tok, TOKEN_MAX + 1);
    Annotator *found = NULL;
    for (int k = 0; k < s->n_ann; k++) /* every token compared, match or not */
        if (token_equal(s->ann[k].token, s->ann[k].token_len, tok, n)) found = &s->ann[k];
    return found;
}

static Annotator *authenticate(Server *s, struct MHD_Connection *c) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && strncasecmp(h, "Bearer ", 7) == 0) return token_find(s, h + 7);
    const char *ck = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, COOKIE_NAME);
    return ck ? token_find(s, ck) : NULL;
}

/* A POST from a page of another site (cross-site request forgery) carries its Origin;
 * browsers send Origin on every POST, scripts like curl send none. */
static int same_origin(struct MHD_Connection *c) {
    const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!o) return 1;
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    return host && strncmp(o, "http://", 7) == 0 && strcmp(o + 7, host) == 0;
}

static void cookie_for(char *out, size_t n, const char *token) {
    snprintf(out, n, COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict%s", token,
             token[0] ? "" : "; Max-Age=0");
}

// ----------------------------------------------------------------------------
// handlers (the annotator is authenticated; POST bodies are decoded into x->req)

static LabelPageInfo page_info(const Server *s, const Annotator *a) {
    LabelPageInfo in = {a->name,          s->m->name, s->items.n,
                        count_done(s, a), s->overlap, a->note[0] ? a->note : NULL};
    return in;
}

static enum MHD_Result h_page(Server *s, Annotator *a, Ctx *x) {
    int i = current_item(s, a);
    LabelPageInfo in = page_info(s, a);
    LabelPage p = {0};
    if (i >= 0) label_page_item(&p, s->mode, &s->items.items[i], &in);
    else label_page_done(&p, &in);
    a->note[0] = 0;
    return send_page(x, MHD_HTTP_OK, &p, NULL);
}

static enum MHD_Result h_next(Server *s, Annotator *a, Ctx *x) {
    int i = current_item(s, a);
    json_t *o = json_pack("{s:b,s:s,s:I,s:I}", "done", i < 0, "annotator", a->name, "judged",
                          (json_int_t)count_done(s, a), "items", (json_int_t)s->items.n);
    if (i >= 0) {
        const LabelItem *it = &s->items.items[i];
        json_object_set_new(o, "id", json_string(it->id));
        json_object_set_new(o, "prompt", json_string(it->prompt));
        s->m->item_json(o, it);
        if (it->category) json_object_set_new(o, "category", json_string(it->category));
    }
    return send_json(x, MHD_HTTP_OK, o, NULL);
}

static enum MHD_Result h_judge(Server *s, Annotator *a, Ctx *x) {
    char err[ERRBUF_LEN], note[NOTE_LEN];
    const char *id;
    if (label_req_only(&x->req, s->m->fields, err) || !(id = label_req_need(&x->req, "id", err)))
        return send_error(x, MHD_HTTP_BAD_REQUEST, err);
    int i = label_items_find(&s->items, id);
    if (i < 0) {
        snprintf(err, sizeof(err), "field id: no item \"%.64s\" in the candidates file", id);
        return send_error(x, MHD_HTTP_BAD_REQUEST, err);
    }
    if (item_done(s, a, i)) {
        snprintf(note, sizeof(note), "item %.64s is judged by you already (undo first)", id);
        return send_outcome(x, a, MHD_HTTP_CONFLICT, note, NULL);
    }
    if (i != a->cur && !item_open_to(s, a, i, time(NULL))) {
        snprintf(note, sizeof(note), "item %.64s has the judgments it needs from others", id);
        return send_outcome(x, a, MHD_HTTP_CONFLICT, note, NULL);
    }
    char t[32];
    label_time_iso8601(t, time(NULL));
    char *line = s->m->judge(s, a, &s->items.items[i], &x->req, t, err);
    if (!line) return send_error(x, MHD_HTTP_BAD_REQUEST, err);
    int st = log_record(s, line, err);
    if (st) return send_error(x, st, err);
    LabelKind k = s->log.j[s->log.n - 1].label;
    if (k == LABEL_SKIP) a->skipped_now[i] = 1;
    if (a->cur == i) a->cur = -1;
    snprintf(note, sizeof(note), "saved: %s for item %.64s", label_kind_name(k), id);
    return send_outcome(x, a, MHD_HTTP_OK, note,
                        json_pack("{s:b,s:s,s:s}", "ok", 1, "id", id, "label", label_kind_name(k)));
}

/* Undo a's last live judgment of an item of this file (also one of an earlier run or of
 * the terminal tool under the same name) and show that item again. */
static enum MHD_Result h_undo(Server *s, Annotator *a, Ctx *x) {
    char err[ERRBUF_LEN], note[NOTE_LEN];
    static const char *const none[] = {NULL};
    if (label_req_only(&x->req, none, err)) return send_error(x, MHD_HTTP_BAD_REQUEST, err);
    int found = -1, ix = -1;
    for (int j = s->log.n - 1; j >= 0 && found < 0; j--) {
        const LabelJudgment *jd = &s->log.j[j];
        if (jd->undone || strcmp(jd->annotator, a->name) != 0) continue;
        if (!label_log_is_live(&s->log, j)) continue;
        ix = label_items_find(&s->items, jd->id);
        if (ix >= 0) found = j;
    }
    if (found < 0) return send_outcome(x, a, MHD_HTTP_CONFLICT, "nothing to undo", NULL);
    char t[32];
    label_time_iso8601(t, time(NULL));
    LabelKind was = s->log.j[found].label;
    const char *id = s->items.items[ix].id;
    int st = log_record(s, label_record_undo(id, a->name, t), err);
    if (st) return send_error(x, st, err);
    a->skipped_now[ix] = 0;
    a->forced = ix;
    snprintf(note, sizeof(note), "undone: %s for item %.64s; judge it again", label_kind_name(was),
             id);
    return send_outcome(
        x, a, MHD_HTTP_OK, note,
        json_pack("{s:b,s:s,s:s}", "ok", 1, "id", id, "undone", label_kind_name(was)));
}

static long count_full(const Server *s) {
    long n = 0;
    for (int i = 0; i < s->items.n; i++) n += s->n_judged[i] >= s->overlap;
    return n;
}

static json_t *json_kappa(double k) {
    return isnan(k) ? json_null() : json_real(k);
}

/* Ranking agreement: Kendall's tau-b per annotator pair and pooled, Krippendorff's alpha
 * (ordinal); null where undefined. */
static json_t *rank_json(const LabelStats *st) {
    json_t *pairs = json_array();
    for (int p = 0; p < st->n_rank_pairs; p++) {
        const LabelRankPairStat *ps = &st->rank_pairs[p];
        json_array_append_new(
            pairs, json_pack("{s:s,s:s,s:I,s:I,s:o}", "a", st->annotators[ps->a], "b",
                             st->annotators[ps->b], "common", (json_int_t)ps->n_common, "defined",
                             (json_int_t)ps->n_defined, "tau_b", json_kappa(ps->tau_mean)));
    }
    return json_pack("{s:I,s:o,s:I,s:o,s:o}", "items", (json_int_t)st->n_rank_items, "pairs", pairs,
                     "pooled_defined", (json_int_t)st->rank_pooled_defined, "pooled_tau_b",
                     json_kappa(st->rank_pooled_tau), "alpha", json_kappa(st->rank_alpha));
}

static json_t *progress_json(const Server *s, const LabelStats *st) {
    json_t *ann = json_array(), *pairs = json_array(), *groups = json_array();
    for (int a = 0; a < st->n_annotators; a++) {
        json_t *c = json_object();
        for (int k = 0; k < LABEL_COUNT; k++)
            json_object_set_new(c, label_kind_name((LabelKind)k), json_integer(st->counts[a][k]));
        json_array_append_new(ann, json_pack("{s:s,s:o,s:I}", "name", st->annotators[a], "counts",
                                             c, "undone", (json_int_t)st->undone[a]));
    }
    for (int p = 0; p < st->n_pairs; p++) {
        const LabelPairStat *ps = &st->pairs[p];
        json_array_append_new(
            pairs, json_pack("{s:s,s:s,s:I,s:I,s:o}", "a", st->annotators[ps->a], "b",
                             st->annotators[ps->b], "common", (json_int_t)ps->n_common, "agree",
                             (json_int_t)ps->n_agree, "kappa", json_kappa(ps->kappa)));
    }
    for (int g = 0; g < st->n_groups; g++)
        json_array_append_new(groups, json_pack("{s:i,s:I,s:o}", "raters", st->groups[g].n_raters,
                                                "items", (json_int_t)st->groups[g].n_items, "kappa",
                                                json_kappa(st->groups[g].kappa)));
    return json_pack("{s:I,s:I,s:I,s:i,s:o,s:o,s:o,s:o}", "items", (json_int_t)s->items.n,
                     "judged_items", (json_int_t)st->n_items, "full_items",
                     (json_int_t)count_full(s), "overlap", s->overlap, "annotators", ann, "pairs",
                     pairs, "fleiss", groups, "rankings", rank_json(st));
}

static enum MHD_Result h_progress(Server *s, Annotator *a, Ctx *x) {
    LabelStats st;
    label_stats_compute(&st, &s->log);
    enum MHD_Result rc;
    if (x->json) {
        rc = send_json(x, MHD_HTTP_OK, progress_json(s, &st), NULL);
    } else {
        LabelPageInfo in = page_info(s, a);
        LabelPage p = {0};
        label_page_progress(&p, &st, &in, count_full(s));
        rc = send_page(x, MHD_HTTP_OK, &p, NULL);
    }
    label_stats_free(&st);
    return rc;
}

static enum MHD_Result h_logout(Server *s, Annotator *a, Ctx *x) {
    (void)s;
    (void)a;
    char cookie[128];
    cookie_for(cookie, sizeof(cookie), "");
    if (x->json) return send_json(x, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1), cookie);
    return send_redirect(x, "/login", cookie);
}

/* POST /login {token}: no annotator yet; a wrong token is a 401 with the form again */
static enum MHD_Result h_login(Server *s, Ctx *x) {
    char err[ERRBUF_LEN];
    static const char *const fields[] = {"token", NULL};
    const char *tok;
    if (label_req_only(&x->req, fields, err) || !(tok = label_req_need(&x->req, "token", err)))
        return send_error(x, MHD_HTTP_BAD_REQUEST, err);
    Annotator *a = token_find(s, tok);
    if (!a) return send_error(x, MHD_HTTP_UNAUTHORIZED, "unknown token");
    char cookie[TOKEN_MAX + 96];
    cookie_for(cookie, sizeof(cookie), a->token);
    if (x->json) return send_json(x, MHD_HTTP_OK, json_pack("{s:s}", "annotator", a->name), cookie);
    return send_redirect(x, "/", cookie);
}

// ----------------------------------------------------------------------------
// dispatch

typedef enum MHD_Result (*Handler)(Server *s, Annotator *a, Ctx *x);

static const struct {
    const char *path;
    int post;
    Handler fn;
} ROUTES[] = {
    {"/", 0, h_page},         {"/progress", 0, h_progress},
    {"/api/next", 0, h_next}, {"/api/progress", 0, h_progress},
    {"/judge", 1, h_judge},   {"/undo", 1, h_undo},
    {"/logout", 1, h_logout},
};

/* Decode a POST body into x->req: 0, or the HTTP status of the refusal with err. */
static int decode_body(Ctx *x, char *err) {
    const char *ct =
        MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (x->n == 0 && !ct) return 0; /* a bare POST (undo, logout) */
    int fmt = label_req_format(ct, err);
    if (fmt < 0) return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
    if (label_req_decode(&x->req, (LabelReqFormat)fmt, x->body ? x->body : "", x->n, err))
        return MHD_HTTP_BAD_REQUEST;
    return 0;
}

static int wants_json(struct MHD_Connection *c, const char *url) {
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *acc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    return strncmp(url, "/api/", 5) == 0 || (ct && strncasecmp(ct, "application/json", 16) == 0) ||
           (acc && strncasecmp(acc, "application/json", 16) == 0);
}

static enum MHD_Result route(Server *s, Ctx *x, const char *url, const char *method) {
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int post = strcmp(method, "POST") == 0;
    x->json = wants_json(x->c, url);
    if (strcmp(url, "/app.js") == 0 || strcmp(url, "/style.css") == 0) {
        if (!get) return send_error(x, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        int js = url[1] == 'a';
        const char *body = js ? label_page_js : label_page_css;
        return send_buf(x, MHD_HTTP_OK, js ? "text/javascript; charset=utf-8" : "text/css",
                        (char *)body, strlen(body), MHD_RESPMEM_PERSISTENT, NULL, NULL);
    }
    if (strcmp(url, "/favicon.ico") == 0) /* browsers ask; there is none */
        return send_buf(x, MHD_HTTP_NO_CONTENT, "image/x-icon", (char *)"", 0,
                        MHD_RESPMEM_PERSISTENT, NULL, NULL);
    Handler fn = NULL;
    int want_post = 0, is_login = strcmp(url, "/login") == 0;
    for (size_t r = 0; r < sizeof(ROUTES) / sizeof(ROUTES[0]) && !fn; r++)
        if (strcmp(url, ROUTES[r].path) == 0) fn = ROUTES[r].fn, want_post = ROUTES[r].post;
    if (!fn && !is_login) return send_error(x, MHD_HTTP_NOT_FOUND, "no such page");
    if (is_login && get) {
        LabelPage p = {0};
        label_page_login(&p, NULL);
        return send_page(x, MHD_HTTP_OK, &p, NULL);
    }
    if (!(is_login ? post : want_post ? post : get))
        return send_error(x, MHD_HTTP_METHOD_NOT_ALLOWED,
                          (is_login || want_post) ? "use POST" : "use GET");
    char err[ERRBUF_LEN];
    if (post) {
        if (!same_origin(x->c))
            return send_error(x, MHD_HTTP_FORBIDDEN, "a form of another site posted here");
        int st = decode_body(x, err);
        if (st) return send_error(x, st, err);
    }
    if (is_login) return h_login(s, x);
    Annotator *a = authenticate(s, x->c);
    if (!a) return send_error(x, MHD_HTTP_UNAUTHORIZED, "log in with your token first");
    return fn(s, a, x);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **state) {
    (void)version;
    Ctx *x = *state;
    if (!x) { /* the headers are in: refuse an announced oversized body before it comes */
        x = xcalloc(1, sizeof(*x));
        x->c = c;
        *state = x;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > LABEL_REQ_MAX_BODY) {
            x->json = wants_json(c, url);
            return send_error(x, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
        }
        if (strcmp(method, "POST") == 0) return MHD_YES; /* the body follows */
    } else if (*upload_size) {
        if (x->n + *upload_size > LABEL_REQ_MAX_BODY) { /* e.g. chunked: no length told */
            x->json = wants_json(c, url);
            return send_error(x, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
        }
        x->body = xrealloc(x->body, x->n + *upload_size);
        memcpy(x->body + x->n, upload_data, *upload_size);
        x->n += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    return route((Server *)cls, x, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    Ctx *x = *state;
    if (!x) return;
    label_req_free(&x->req);
    free(x->body);
    free(x);
    *state = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    fprintf(stderr, "rlhf-label serve: http: ");
    vfprintf(stderr, fmt, ap);
}

// ----------------------------------------------------------------------------
// annotators and their tokens

static int name_check(const char *name, size_t n, const char *where, char *err) {
    if (n == 0 || n > NAME_MAX_BYTES)
        return errf(err, "%s: an annotator name must have 1 to %d bytes", where, NAME_MAX_BYTES);
    if (!utf8_valid(name, n, NULL)) return errf(err, "%s: the name is not valid UTF-8", where);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] <= 0x20 || name[i] == 0x7f || name[i] == ',')
            return errf(err, "%s: the name \"%.*s\" has a space, comma or control character", where,
                        (int)n, name);
    return 0;
}

/* cookie-safe characters only, and long enough not to be guessed */
static int token_check(const char *tok, size_t n, const char *where, char *err) {
    if (n < TOKEN_MIN || n > TOKEN_MAX)
        return errf(err,
                    "%s: a token must have %d to %d characters (e.g. `openssl rand "
                    "-hex 16`)",
                    where, TOKEN_MIN, TOKEN_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = tok[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '~'))
            return errf(err, "%s: a token may only use A-Z a-z 0-9 - _ . ~", where);
    }
    return 0;
}

static int ann_add(Server *s, const char *name, size_t nn, const char *tok, size_t tn,
                   const char *where, char *err) {
    for (int k = 0; k < s->n_ann; k++) {
        if (strlen(s->ann[k].name) == nn && memcmp(s->ann[k].name, name, nn) == 0)
            return errf(err, "%s: annotator %.*s appears twice", where, (int)nn, name);
        if (s->ann[k].token_len == tn && memcmp(s->ann[k].token, tok, tn) == 0)
            return errf(err, "%s: two annotators have the same token", where);
    }
    s->ann = xrealloc(s->ann, (size_t)(s->n_ann + 1) * sizeof(Annotator));
    Annotator *a = &s->ann[s->n_ann++];
    memset(a, 0, sizeof(*a));
    a->name = xmalloc(nn + 1);
    memcpy(a->name, name, nn);
    a->name[nn] = 0;
    a->token = xmalloc(tn + 1);
    memcpy(a->token, tok, tn);
    a->token[tn] = 0;
    a->token_len = tn;
    a->cur = a->forced = -1;
    return 0;
}

/* A tokens file: "name token" per line; blank lines and # comments are skipped. */
static int tokens_load(Server *s, const char *path, char *err) {
    size_t len;
    char *buf = file_read_all(path, &len, err);
    if (!buf) return -1;
    int rc = 0, lineno = 0;
    char where[600];
    for (char *line = buf; line && !rc;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        lineno++;
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        char *f[3];
        size_t fl[3];
        int nf = 0;
        for (size_t i = 0; i < n && nf < 3;) {
            while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
            if (i >= n || line[i] == '#') break;
            f[nf] = line + i;
            while (i < n && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') i++;
            fl[nf] = (size_t)(line + i - f[nf]);
            nf++;
        }
        if (nf == 1 || nf == 3) rc = errf(err, "%s: expected two fields, \"name token\"", where);
        else if (nf == 2)
            rc = name_check(f[0], fl[0], where, err) || token_check(f[1], fl[1], where, err) ||
                 ann_add(s, f[0], fl[0], f[1], fl[1], where, err);
        line = nl && nl + 1 < buf + len ? nl + 1 : NULL;
    }
    free(buf);
    if (!rc && s->n_ann == 0) rc = errf(err, "%s: no \"name token\" line", path);
    return rc ? -1 : 0;
}

/* --annotators a,b,c: a fresh random token for each (printed at start) */
static int tokens_generate(Server *s, const char *list, char *err) {
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        unsigned char rnd[16];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
            return errf(err, "getrandom: %s", strerror(errno));
        char tok[2 * sizeof(rnd) + 1];
        for (size_t i = 0; i < sizeof(rnd); i++) snprintf(tok + 2 * i, 3, "%02x", rnd[i]);
        if (name_check(p, n, "--annotators", err) ||
            ann_add(s, p, n, tok, strlen(tok), "--annotators", err))
            return -1;
        p += n + (p[n] == ',');
    }
    return s->n_ann ? 0 : errf(err, "--annotators: no name given");
}

// ----------------------------------------------------------------------------
// start, run until a signal, stop

typedef struct {
    int port;
    const char *bind, *tokens, *names, *cand, *out;
    int overlap;
    LabelMode mode;
} Opts;

static void serve_usage(FILE *f) {
    fprintf(f, "usage: rlhf-label serve [--port N] [--bind ADDR] [--tokens FILE | "
               "--annotators A,B,...]\n"
               "                        [--overlap K] [--mode pair|thumbs|rank] CANDIDATES.jsonl "
               "--out PREFS.jsonl\n"
               "Serves the labelling web page (default http://127.0.0.1:8080/; --port 0 picks "
               "a free port).\n"
               "--tokens: lines \"name token\"; --annotators: tokens are generated and "
               "printed.\n"
               "--overlap K: each item is given to up to K annotators (default 1).\n"
               "Stops on SIGINT/SIGTERM. See docs/labelling.md.\n"
               "Exit status: 0 stopped by SIGINT/SIGTERM/SIGHUP; 1 an error (bad input file, "
               "tokens file,\nport in use, log locked); 2 a usage error.\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* 0, or the exit status (2: usage) */
static int parse_opts(Opts *o, int argc, char **argv) {
    *o = (Opts){.port = 8080, .bind = "127.0.0.1", .overlap = 1, .mode = LABEL_MODE_PAIR};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (v && strcmp(a, "--port") == 0) bad = parse_int(v, 0, 65535, &o->port), i++;
        else if (v && strcmp(a, "--overlap") == 0) bad = parse_int(v, 1, 1000, &o->overlap), i++;
        else if (v && strcmp(a, "--bind") == 0) o->bind = v, i++;
        else if (v && strcmp(a, "--tokens") == 0) o->tokens = v, i++;
        else if (v && strcmp(a, "--annotators") == 0) o->names = v, i++;
        else if (v && strcmp(a, "--out") == 0) o->out = v, i++;
        else if (v && strcmp(a, "--mode") == 0) {
            i++;
            if (strcmp(v, "pair") == 0) o->mode = LABEL_MODE_PAIR;
            else if (strcmp(v, "thumbs") == 0) o->mode = LABEL_MODE_THUMBS;
            else if (strcmp(v, "rank") == 0) o->mode = LABEL_MODE_RANK;
            else bad = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr,
                    "rlhf-label serve: unknown option or missing value: %s (see rlhf-label "
                    "serve --help)\n",
                    a);
            return 2;
        } else if (!o->cand) o->cand = a;
        else {
            fprintf(stderr, "rlhf-label serve: one candidates file only (got %s and %s)\n", o->cand,
                    a);
            return 2;
        }
        if (bad) {
            fprintf(stderr,
                    "rlhf-label serve: bad value for %s: %s (--port 0..65535, "
                    "--overlap 1..1000, --mode pair|thumbs|rank; see rlhf-label serve --help)\n",
                    a, v);
            return 2;
        }
    }
    const char *miss = !o->cand                  ? "no CANDIDATES.jsonl given"
                       : !o->out                 ? "--out PREFS.jsonl is required"
                       : !o->tokens == !o->names ? "give one of --tokens FILE and --annotators"
                                                   " A,B,..."
                                                 : NULL;
    if (miss) {
        fprintf(stderr, "rlhf-label serve: %s (see rlhf-label serve --help)\n", miss);
        return 2;
    }
    return 0;
}

static int server_load(Server *s, const Opts *o, char *err) {
    s->mode = o->mode;
    s->m = &MODES[o->mode];
    s->overlap = o->overlap;
    s->out_path = o->out;
    s->out_fd = -1;
    label_log_init(&s->log);
    if (o->tokens ? tokens_load(s, o->tokens, err) : tokens_generate(s, o->names, err)) return -1;
    if (label_items_load(&s->items, o->cand, o->mode, err)) return -1;
    if (label_log_read(&s->log, o->out, 1, err)) return -1;
    for (int i = 0; i < s->log.n_warnings; i++)
        fprintf(stderr, "rlhf-label serve: warning: %s\n", s->log.warnings[i]);
    if ((s->out_fd = label_log_open(o->out, err)) < 0) return -1;
    s->n_judged = xcalloc((size_t)s->items.n, sizeof(int));
    for (int k = 0; k < s->n_ann; k++) s->ann[k].skipped_now = xcalloc((size_t)s->items.n, 1);
    count_judged(s);
    return 0;
}

static void server_free(Server *s) {
    if (s->out_fd >= 0) close(s->out_fd);
    for (int k = 0; k < s->n_ann; k++) {
        free(s->ann[k].name);
        free(s->ann[k].token);
        free(s->ann[k].skipped_now);
    }
    free(s->ann);
    free(s->n_judged);
    label_items_free(&s->items);
    label_log_free(&s->log);
}

static struct MHD_Daemon *server_start(Server *s, const Opts *o, char *url, size_t url_n,
                                       char *err) {
    struct sockaddr_in v4 = {0};
    struct sockaddr_in6 v6 = {0};
    int is6 = strchr(o->bind, ':') != NULL;
    if (is6 ? inet_pton(AF_INET6, o->bind, &v6.sin6_addr) != 1
            : inet_pton(AF_INET, o->bind, &v4.sin_addr) != 1) {
        errf(err, "--bind %s: not an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::1)", o->bind);
        return NULL;
    }
    v4.sin_family = AF_INET;
    v4.sin_port = htons((uint16_t)o->port);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons((uint16_t)o->port);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (is6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
        NULL, MHD_OPTION_SOCK_ADDR, is6 ? (struct sockaddr *)&v6 : (struct sockaddr *)&v4,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
        MHD_OPTION_END);
    if (!d) {
        errf(err,
             "cannot listen on %s port %d (%s); is the port in use? (--port 0 picks a "
             "free one)",
             o->bind, o->port, errno ? strerror(errno) : "libmicrohttpd");
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(url, url_n, is6 ? "http://[%s]:%u/" : "http://%s:%u/", o->bind,
             di ? (unsigned)di->port : (unsigned)o->port);
    return d;
}

int label_serve_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            serve_usage(stdout);
            return 0;
        }
    Opts o;
    int urc = parse_opts(&o, argc, argv);
    if (urc) return urc;
    Server s;
    memset(&s, 0, sizeof(s));
    char err[ERRBUF_LEN], url[128];
    /* the signals that stop the server are taken by sigwait below; blocked before the
     * HTTP thread starts, so that it inherits the mask and never gets them */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct MHD_Daemon *d = NULL;
    if (server_load(&s, &o, err) || !(d = server_start(&s, &o, url, sizeof(url), err))) {
        fprintf(stderr, "rlhf-label serve: %s\n", err);
        server_free(&s);
        return 1;
    }
    if (o.names)
        for (int k = 0; k < s.n_ann; k++)
            printf("rlhf-label serve: token for %s: %s\n", s.ann[k].name, s.ann[k].token);
    printf("rlhf-label serve: listening on %s (%s mode, %d items, overlap %d, %d annotators, "
           "log %s)\n",
           url, s.m->name, s.items.n, s.overlap, s.n_ann, o.out);
    fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    MHD_stop_daemon(d);
    printf("rlhf-label serve: stopped by signal %d; %d judgment records in %s\n", sig, s.log.n,
           o.out);
    server_free(&s);
    return 0;
}
