/*
 * common/label_req.h — decoding the request bodies of the labelling web page
 * (`rlhf-label serve`, common/label_serve.c): HTML form posts
 * (application/x-www-form-urlencoded) and JSON objects (application/json), both into one
 * small list of named string fields, so that each handler (judge, undo, login) validates
 * the fields it needs in the same way whatever the encoding; and the places of a rank
 * judgment (fields r1..rK) into ranks, checked.
 *
 * Bodies come from the network: every limit is checked here and every refusal has a
 * message fit for a 400 response (which field, what is wrong, what is accepted):
 *   - at most LABEL_REQ_MAX_BODY bytes (the server answers 413 before reading more);
 *   - at most LABEL_REQ_MAX_FIELDS fields, no duplicate names;
 *   - names: 1..LABEL_REQ_MAX_NAME characters of [a-z0-9_];
 *   - values: valid UTF-8, no NUL, at most LABEL_REQ_MAX_VALUE bytes after decoding;
 *   - forms: name=value pairs joined by '&', '+' for space, %XX escapes (two hex digits);
 *   - JSON: one object whose values are all strings.
 *
 * What this does not do: decide what a field means (the handlers do) or read HTTP.
 */
#ifndef RLHF_LABEL_REQ_H
#define RLHF_LABEL_REQ_H

#include <stddef.h>

#define LABEL_REQ_MAX_BODY 16384
#define LABEL_REQ_MAX_FIELDS 16
#define LABEL_REQ_MAX_NAME 32
#define LABEL_REQ_MAX_VALUE 4096

typedef enum { LABEL_REQ_FORM = 0, LABEL_REQ_JSON = 1 } LabelReqFormat;

typedef struct {
    char *name;
    char *value; /* NUL-terminated, valid UTF-8 */
} LabelReqField;

typedef struct {
    LabelReqField f[LABEL_REQ_MAX_FIELDS];
    int n;
} LabelReq;

/* The format named by a Content-Type header value (case-insensitive media type; a
 * charset parameter, when given, must be utf-8). Returns the format, or -1 with err
 * naming the two accepted types. A NULL header is an error too. */
int label_req_format(const char *content_type, char *err);

/* Decode a body of len bytes (not NUL-terminated). Returns 0, or -1 with err (nothing
 * to free then). An empty form body has no fields; an empty JSON body is an error. */
int label_req_decode(LabelReq *r, LabelReqFormat fmt, const char *body, size_t len, char *err);

/* The value of a field, or NULL when absent. */
const char *label_req_get(const LabelReq *r, const char *name);
/* The value of a field that must be present: NULL with err "missing field NAME" */
const char *label_req_need(const LabelReq *r, const char *name, char *err);
/* -1 with err naming the first field not in `known` (NULL-terminated), else 0 */
int label_req_only(const LabelReq *r, const char *const *known, char *err);

/* Most responses a rank judgment names (fields r1..r9). */
#define LABEL_REQ_RANK_MAX 9

/* The places of a ranking of k responses (1 <= k <= LABEL_REQ_RANK_MAX): field "rI" is the
 * place of response I (1-based), a decimal integer from 1 (best) to k; equal places are
 * ties. Every response needs a place, no field rJ with J > k may be given, and the places
 * must be consistent as the terminal tool writes them (standard competition ranking):
 * the place of a response is 1 + the number of responses with a better place, so after
 * two responses tied for place 1 the next place is 3. Fills ranks[0..k) and returns 0,
 * or -1 with err naming the first bad field, what is wrong and the value to send. */
int label_req_ranks(const LabelReq *r, int k, int *ranks, char *err);
/* 1 if r has a field named r<digits> (a place of a ranking), else 0 */
int label_req_has_rank_field(const LabelReq *r);

void label_req_free(LabelReq *r);

#endif
