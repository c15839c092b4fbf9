/*
 * common/route.h — the routing table of the mixed judge (judge.kind = mix): which judge
 * scores a rollout, chosen from the prompt text by the verifiers' prompt rules
 * (verify.h), never from a label the data generator knows.
 *
 *   judge.route = arith:rule:arith, count:rule:count, repeat:rule:repeat@2-1, *:rm
 *
 * Entries are separated by commas; each is CATEGORY:JUDGE[@SCALE[+|-OFFSET]]:
 *   CATEGORY  a verifier kind (arith, count, repeat: the prompt rules of verify.h) or
 *             "*" for every prompt no other entry takes (required, exactly once)
 *   JUDGE     "rm" (the reward model or ensemble the reward server loads), "gold", or a
 *             rule spec of judge.h ("rule:arith", "rule:verify", "rule:length:12", ...)
 *   SCALE, OFFSET  the judge's score becomes SCALE * score + OFFSET (default 1 and 0),
 *             so that a 0/1 verifier can be put on the scale of a normalised reward
 *             model (e.g. @2-1 gives -1 / +1)
 * Which entry scored each rollout travels as its index in the score reply (the extra
 * array ONLINE_EXTRA_JUDGE) and the learner logs a count and mean score per entry.
 *
 * Errors: route_parse returns -1 with a message naming the entry and what to write.
 */
#ifndef RLHF_ROUTE_H
#define RLHF_ROUTE_H

#define ROUTE_MAX 8
#define ROUTE_SPEC_LEN 128

typedef struct {
    char cat[16];               /* "arith", ..., "*" */
    int kind;                   /* VerifyKind, or -1 for "*" */
    char spec[ROUTE_SPEC_LEN];  /* judge spec: "rm", "gold", "rule:..." */
    int is_rm;
    double scale, offset;
} RouteEntry;

typedef struct {
    int n;
    int fallback; /* index of the "*" entry */
    RouteEntry e[ROUTE_MAX];
} RouteTable;

/* Parse text (see above) into t. 0, or -1 with err (ERRBUF_LEN bytes). */
int route_parse(RouteTable *t, const char *text, char *err);
/* The entry that scores this prompt: the entry of the verifier kind that recognises it,
 * else the "*" entry. */
int route_pick(const RouteTable *t, const char *prompt);
/* 1 if some entry is "rm" */
int route_uses_rm(const RouteTable *t);

#endif
