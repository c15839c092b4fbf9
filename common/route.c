/*
 * common/route.c — parsing and lookup of the mixed judge's routing table (route.h). The
 * category of a prompt comes from verify_parse, the same text rules the verifiers use,
 * so a prompt is routed to a verifier exactly when that verifier can check it.
 */
#include "route.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "verify.h"

/* Copy [s, e) into out without surrounding blanks; -1 if it does not fit. */
static int trimmed(char *out, size_t cap, const char *s, const char *e) {
    while (s < e && isspace((unsigned char)*s)) s++;
    while (e > s && isspace((unsigned char)e[-1])) e--;
    if ((size_t)(e - s) >= cap) return -1;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = 0;
    return 0;
}

/* "@SCALE[+|-OFFSET]" at the end of spec, removed from it. */
static int parse_weight(RouteEntry *r, char *spec, const char *entry, char *err) {
    r->scale = 1.0;
    r->offset = 0.0;
    char *at = strchr(spec, '@');
    if (!at) return 0;
    char *end;
    r->scale = strtod(at + 1, &end);
    if (end == at + 1) goto bad;
    if (*end) {
        if (*end != '+' && *end != '-') goto bad;
        char *e2;
        r->offset = strtod(end, &e2);
        if (e2 == end + 1 || *e2) goto bad;
    }
    if (!(r->scale == r->scale) || !(r->offset == r->offset)) goto bad;
    *at = 0;
    return 0;
bad:
    return errf(err,
                "judge.route entry '%s': after '@' write SCALE or SCALE+OFFSET / SCALE-OFFSET "
                "(numbers, e.g. @2-1)",
                entry);
}

static int parse_entry(RouteTable *t, const char *entry, char *err) {
    if (t->n == ROUTE_MAX) return errf(err, "judge.route: at most %d entries", ROUTE_MAX);
    RouteEntry *r = &t->e[t->n];
    memset(r, 0, sizeof *r);
    const char *colon = strchr(entry, ':');
    if (!colon || trimmed(r->cat, sizeof r->cat, entry, colon) != 0 || !r->cat[0])
        return errf(err,
                    "judge.route entry '%s': write CATEGORY:JUDGE (e.g. arith:rule:arith or "
                    "*:rm)",
                    entry);
    if (trimmed(r->spec, sizeof r->spec, colon + 1, colon + strlen(colon)) != 0 || !r->spec[0])
        return errf(err, "judge.route entry '%s': the judge after ':' is empty or too long",
                    entry);
    if (parse_weight(r, r->spec, entry, err) != 0) return -1;
    r->kind = strcmp(r->cat, "*") == 0 ? -1 : verify_kind_from_name(r->cat);
    if (r->kind == VERIFY_NONE || (r->kind < 0 && strcmp(r->cat, "*") != 0))
        return errf(err,
                    "judge.route entry '%s': unknown category '%s' (valid: arith, count, "
                    "repeat, *)",
                    entry, r->cat);
    r->is_rm = strcmp(r->spec, "rm") == 0;
    if (!r->is_rm && strcmp(r->spec, "gold") != 0 && strncmp(r->spec, "rule:", 5) != 0)
        return errf(err, "judge.route entry '%s': the judge must be rm, gold or rule:... (is '%s')",
                    entry, r->spec);
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->e[i].cat, r->cat))
            return errf(err, "judge.route: category '%s' appears twice", r->cat);
    if (r->kind < 0) t->fallback = t->n;
    t->n++;
    return 0;
}

int route_parse(RouteTable *t, const char *text, char *err) {
    memset(t, 0, sizeof *t);
    t->fallback = -1;
    if (!text || !*text)
        return errf(err, "judge.route is empty: judge.kind = mix needs a routing table such "
                         "as 'arith:rule:arith, count:rule:count, repeat:rule:repeat, *:rm'");
    const char *s = text;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char entry[ROUTE_SPEC_LEN + 32];
        if (len >= sizeof entry) return errf(err, "judge.route: an entry is too long");
        memcpy(entry, s, len);
        entry[len] = 0;
        if (parse_entry(t, entry, err) != 0) return -1;
        if (!comma) break;
        s = comma + 1;
    }
    if (t->fallback < 0)
        return errf(err, "judge.route '%s' has no '*' entry: add one for the prompts no "
                         "verifier recognises (e.g. *:rm)",
                    text);
    return 0;
}

int route_pick(const RouteTable *t, const char *prompt) {
    VerifyQuery q;
    VerifyKind k = verify_parse(prompt, &q);
    for (int i = 0; k != VERIFY_NONE && i < t->n; i++)
        if (t->e[i].kind == (int)k) return i;
    return t->fallback;
}

int route_uses_rm(const RouteTable *t) {
    for (int i = 0; i < t->n; i++)
        if (t->e[i].is_rm) return 1;
    return 0;
}
