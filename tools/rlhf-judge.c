/*
 * tools/rlhf-judge.c — automatic feedback: label candidate pairs (or single responses)
 * with a judge plus simulated annotators, or score responses with a judge.
 *
 *   build/rlhf-judge --judge SPEC [options] IN.jsonl > OUT.jsonl
 *       IN lines {"prompt","a","b"[,"category","id"]}; OUT lines in the TRL preference
 *       format {"prompt","chosen","rejected","category","annotator","label","time",
 *       "judge"[,"id"]}, label "A" or "B". A tie (|g_a - g_b| <= --tie-band) is written as
 *       {"prompt","a","b",...,"label":"tie"} WITHOUT chosen/rejected, so preference readers
 *       (which need chosen and rejected) never train on it.
 *   build/rlhf-judge --thumbs --judge SPEC [options] IN.jsonl > OUT.jsonl
 *       IN lines {"prompt","response"[,"id"]}; OUT {"prompt","response","category",
 *       "annotator","label":"up"|"down","time","judge"[,"id"]}: up with probability
 *       σ((g - threshold)/τ), flipped with --flip.
 *   build/rlhf-judge --rank --judge SPEC [options] IN.jsonl > OUT.jsonl
 *       IN lines {"prompt","responses":[r1..rK][,"category","id"]} (2 <= K <= 64); OUT
 *       ranking records {"prompt","responses","ranks","category","annotator","label":
 *       "rank","time","judge"[,"id"]} (common/label.h), ranks[i] = place of responses[i]
 *       (1 = best), drawn by the Plackett–Luce model with the same --tau/--flip/--tie-band
 *       (annotator_rank). `learner rm` trains on this file directly.
 *   build/rlhf-judge score --judge SPEC [--task-seed S] [--skip-bad] IN.jsonl
 *       per-line scores as JSONL on stdout for lines with "response", "chosen"+"rejected"
 *       or "a"+"b"; a per-category summary on stderr.
 *
 * Options: --task-seed S (the task world the judge uses; default 1234, as rlhf-task),
 * --annotators K (simulated annotators; line n is labelled by annotator (n-1) % K),
 * --tau T[,T...] (one value or K values), --flip F[,F...], --tie-band B, --threshold X
 * (thumbs), --seed S (label noise; line n uses the stream (S, n), so a line's label does not
 * depend on the others), --time ISO (fixed "time" field, for reproducible files),
 * --skip-bad (report bad lines and go on, instead of stopping at the first).
 * IN may be "-" for stdin. Bad input lines are reported as "file:line: what is wrong".
 * Exit status: 0 if at least one line was processed and (without --skip-bad) none was
 * bad; 1 otherwise; 2 on a usage error. This program never trains anything.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "judge.h"
#include "task.h"
#include "util.h"

#define MAX_LINE (1 << 20)
#define MAX_ANNOTATORS 64
#define MAX_REPORTED 20

typedef struct {
    const char *judge_spec;
    uint64_t task_seed, seed;
    int n_ann;
    Annotator ann[MAX_ANNOTATORS];
    double threshold;
    int thumbs, rank, skip_bad, score_mode;
    const char *fixed_time;
    const char *in_path;
} Opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: rlhf-judge --judge SPEC [--annotators K] [--tau T[,T..]] [--flip F[,F..]]\n"
            "                  [--tie-band B] [--seed S] [--task-seed S] [--time ISO]\n"
            "                  [--skip-bad] [--thumbs [--threshold X] | --rank] IN.jsonl > OUT.jsonl\n"
            "       rlhf-judge score --judge SPEC [--task-seed S] [--skip-bad] IN.jsonl\n"
            "SPEC: gold | rule:arith | rule:count | rule:repeat | rule:verify | rule:refusal |\n"
            "      rule:contains:WORD | rule:length:N\n"
            "pairs in: {\"prompt\",\"a\",\"b\"[,\"category\",\"id\"]}  thumbs in: "
            "{\"prompt\",\"response\"[,\"id\"]}\n"
            "rank in: {\"prompt\",\"responses\":[...][,\"category\",\"id\"]}\n"
            "defaults: --annotators 1 --tau 0.05 --flip 0 --tie-band 0 --threshold 0.75 "
            "--seed 1 --task-seed %d\n"
            "Exit status: 0 every line processed (or skipped with --skip-bad) and at least one\n"
            "valid; 1 a bad line, no valid line or an I/O error; 2 a usage error.\n",
            TASK_DEFAULT_SEED);
}


static double parse_double(const char *flag, const char *s, double lo, double hi) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi))
        fatal("%s '%s': expected a number in [%g, %g]", flag, s, lo, hi);
    return v;
}

static uint64_t parse_u64(const char *flag, const char *s) {
    char *end;
    if (s[0] == '-') fatal("%s '%s': expected a non-negative integer", flag, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end) fatal("%s '%s': expected a non-negative integer", flag, s);
    return (uint64_t)v;
}

/* "0.1,0.2" -> values; returns the count */
static int parse_list(const char *flag, const char *s, double *out, int max, double lo, double hi) {
    char *copy = xstrdup(s), *save = NULL;
    int n = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max) fatal("%s: more than %d values", flag, max);
        out[n++] = parse_double(flag, t, lo, hi);
    }
    free(copy);
    if (n == 0) fatal("%s: no value", flag);
    return n;
}

static void parse_args(Opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->task_seed = TASK_DEFAULT_SEED;
    o->seed = 1;
    o->n_ann = 1;
    o->threshold = 0.75;
    double tau[MAX_ANNOTATORS] = {0.05}, flip[MAX_ANNOTATORS] = {0.0}, band = 0.0;
    int n_tau = 1, n_flip = 1;
    int i = 1;
    if (argc > 1 && !strcmp(argv[1], "score")) {
        o->score_mode = 1;
        i = 2;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
#define VAL() (has_val ? argv[++i] : (usage_error("rlhf-judge", "%s needs a value", a), ""))
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--judge"))
            o->judge_spec = VAL();
        else if (!strcmp(a, "--task-seed"))
            o->task_seed = parse_u64(a, VAL());
        else if (!strcmp(a, "--seed"))
            o->seed = parse_u64(a, VAL());
        else if (!strcmp(a, "--skip-bad"))
            o->skip_bad = 1;
        else if (!o->score_mode && !strcmp(a, "--annotators"))
            o->n_ann = (int)parse_double(a, VAL(), 1, MAX_ANNOTATORS);
        else if (!o->score_mode && !strcmp(a, "--tau"))
            n_tau = parse_list(a, VAL(), tau, MAX_ANNOTATORS, 0.0, 1e6);
        else if (!o->score_mode && !strcmp(a, "--flip"))
            n_flip = parse_list(a, VAL(), flip, MAX_ANNOTATORS, 0.0, 1.0);
        else if (!o->score_mode && !strcmp(a, "--tie-band"))
            band = parse_double(a, VAL(), 0.0, 1.0);
        else if (!o->score_mode && !strcmp(a, "--threshold"))
            o->threshold = parse_double(a, VAL(), 0.0, 1.0);
        else if (!o->score_mode && !strcmp(a, "--thumbs"))
            o->thumbs = 1;
        else if (!o->score_mode && !strcmp(a, "--rank"))
            o->rank = 1;
        else if (!o->score_mode && !strcmp(a, "--time"))
            o->fixed_time = VAL();
        else if (a[0] == '-' && a[1] != 0) {
            usage_error("rlhf-judge", "unknown option '%s'%s", a,
                        o->score_mode ? " for score" : "");
        } else {
            if (o->in_path)
                usage_error("rlhf-judge", "more than one input file ('%s' and '%s')",
                            o->in_path, a);
            o->in_path = a;
        }
#undef VAL
    }
    if (!o->judge_spec) usage_error("rlhf-judge", "--judge SPEC is required");
    if (o->thumbs && o->rank) usage_error("rlhf-judge", "--thumbs and --rank exclude each other");
    if (!o->in_path) usage_error("rlhf-judge", "an input file (or - for stdin) is required");
    if (n_tau != 1 && n_tau != o->n_ann)
        fatal("--tau: %d values for %d annotators (give one value or one per annotator)", n_tau,
              o->n_ann);
    if (n_flip != 1 && n_flip != o->n_ann)
        fatal("--flip: %d values for %d annotators (give one value or one per annotator)", n_flip,
              o->n_ann);
    for (int k = 0; k < o->n_ann; k++) {
        snprintf(o->ann[k].name, sizeof o->ann[k].name, "sim%d", k);
        o->ann[k].tau = tau[n_tau == 1 ? 0 : k];
        o->ann[k].flip = flip[n_flip == 1 ? 0 : k];
        o->ann[k].tie_band = band;
    }
}

// ---- input ---------------------------------------------------------------------------

typedef struct {
    FILE *f;
    const char *path;
    int line;
    char *buf;
    size_t cap;
    int n_bad, n_ok;
    int skip_bad;
} Reader;

/* Report a bad line: fatal without --skip-bad, else a warning (the first MAX_REPORTED). */
static void bad_line(Reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad_line(Reader *r, const char *fmt, ...) {
    char msg[ERRBUF_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->n_bad++;
    if (!r->skip_bad) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: %s\n", r->path, r->line, msg);
        fprintf(stderr, "rlhf-judge: stopped at the first bad line (use --skip-bad to skip bad "
                        "lines)\n");
        exit(1);
    }
    if (r->n_bad <= MAX_REPORTED) fprintf(stderr, "%s:%d: %s (skipped)\n", r->path, r->line, msg);
    if (r->n_bad == MAX_REPORTED + 1)
        fprintf(stderr, "rlhf-judge: further bad lines are counted, not shown\n");
}

/* Next JSON object, or NULL at end of input. Bad lines are reported and skipped. */
static json_t *next_object(Reader *r) {
    for (;;) {
        ssize_t n = getline(&r->buf, &r->cap, r->f);
        if (n < 0) return NULL;
        r->line++;
        while (n > 0 && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r'))
            r->buf[--n] = 0;
        size_t k = 0;
        while (k < (size_t)n && (r->buf[k] == ' ' || r->buf[k] == '\t'))
            k++;
        if (k == (size_t)n) continue; /* blank line */
        if (n > MAX_LINE) {
            bad_line(r, "line is %zd bytes, longer than the limit of %d", n, MAX_LINE);
            continue;
        }
        size_t off;
        if (!utf8_valid(r->buf, (size_t)n, &off)) {
            bad_line(r, "invalid UTF-8 at byte %zu of the line", off + 1);
            continue;
        }
        json_error_t e;
        json_t *j = json_loadb(r->buf, (size_t)n, 0, &e);
        if (!j) {
            bad_line(r, "malformed JSON at column %d: %s", e.column, e.text);
            continue;
        }
        if (!json_is_object(j)) {
            bad_line(r, "expected a JSON object {...}");
            json_decref(j);
            continue;
        }
        return j;
    }
}

/* A string field; NULL (and the line reported) if missing or not a string. */
static const char *need_str(Reader *r, json_t *o, const char *key, const char *what) {
    json_t *v = json_object_get(o, key);
    if (!v) {
        bad_line(r, "missing field \"%s\" (%s)", key, what);
        return NULL;
    }
    if (!json_is_string(v)) {
        bad_line(r, "field \"%s\" must be a string", key);
        return NULL;
    }
    return json_string_value(v);
}

static void iso_time(char *out, size_t cap, const Opts *o) {
    if (o->fixed_time) {
        snprintf(out, cap, "%s", o->fixed_time);
        return;
    }
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *category_out(const JudgeScores *s, json_t *in) {
    if (s->category != TASK_CAT_UNKNOWN) return task_category_name(s->category);
    json_t *c = json_object_get(in, "category");
    return json_is_string(c) ? json_string_value(c) : "unknown";
}

static void emit(json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    ASSERT(s != NULL);
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
    json_decref(o);
}

// ---- label mode -------------------------------------------------------------------------

static int run_label(const Opts *o, Judge *j, Reader *r) {
    char err[ERRBUF_LEN], when[64];
    int counts[3] = {0, 0, 0}, ups = 0;
    json_t *in;
    while ((in = next_object(r))) {
        const char *prompt = need_str(r, in, "prompt",
                                      o->thumbs ? "thumbs lines are {\"prompt\",\"response\"}"
                                                : "pair lines are {\"prompt\",\"a\",\"b\"}");
        const char *ra = NULL, *rb = NULL;
        if (prompt && o->thumbs)
            ra = need_str(r, in, "response", "thumbs lines are {\"prompt\",\"response\"}");
        else if (prompt) {
            ra = need_str(r, in, "a", "pair lines are {\"prompt\",\"a\",\"b\"}");
            if (ra) rb = need_str(r, in, "b", "pair lines are {\"prompt\",\"a\",\"b\"}");
        }
        if (!prompt || !ra || (!o->thumbs && !rb)) {
            json_decref(in);
            continue;
        }
        JudgeScores sa, sb;
        if (judge_score(j, prompt, ra, &sa, err) != 0 ||
            (!o->thumbs && judge_score(j, prompt, rb, &sb, err) != 0)) {
            bad_line(r, "%s", err);
            json_decref(in);
            continue;
        }
        const Annotator *ann = &o->ann[(r->line - 1) % o->n_ann];
        Rng rng;
        rng_init_keyed(&rng, o->seed, (uint64_t)r->line, 0x6a756467ULL /* "judg" */);
        iso_time(when, sizeof when, o);
        json_t *out = json_object();
        json_object_set_new(out, "prompt", json_string(prompt));
        if (o->thumbs) {
            int up = annotator_thumb(ann, sa.total, o->threshold, &rng);
            ups += up;
            json_object_set_new(out, "response", json_string(ra));
            json_object_set_new(out, "category", json_string(category_out(&sa, in)));
            json_object_set_new(out, "annotator", json_string(ann->name));
            json_object_set_new(out, "label", json_string(up ? "up" : "down"));
        } else {
            Pref p = annotator_prefer(ann, sa.total, sb.total, &rng);
            counts[p]++;
            if (p == PREF_TIE) {
                json_object_set_new(out, "a", json_string(ra));
                json_object_set_new(out, "b", json_string(rb));
            } else {
                json_object_set_new(out, "chosen", json_string(p == PREF_A ? ra : rb));
                json_object_set_new(out, "rejected", json_string(p == PREF_A ? rb : ra));
            }
            json_object_set_new(out, "category", json_string(category_out(&sa, in)));
            json_object_set_new(out, "annotator", json_string(ann->name));
            json_object_set_new(out, "label",
                                json_string(p == PREF_A   ? "A"
                                            : p == PREF_B ? "B"
                                                          : "tie"));
        }
        json_object_set_new(out, "time", json_string(when));
        json_object_set_new(out, "judge", json_string(o->judge_spec));
        json_t *id = json_object_get(in, "id");
        if (json_is_string(id) || json_is_integer(id)) json_object_set(out, "id", id);
        emit(out);
        r->n_ok++;
        json_decref(in);
    }
    if (o->thumbs)
        fprintf(stderr, "rlhf-judge: %d lines labelled (%d up, %d down), %d bad lines skipped\n",
                r->n_ok, ups, r->n_ok - ups, r->n_bad);
    else
        fprintf(stderr,
                "rlhf-judge: %d pairs labelled (A %d, B %d, tie %d), %d bad lines skipped\n",
                r->n_ok, counts[PREF_A], counts[PREF_B], counts[PREF_TIE], r->n_bad);
    return 0;
}

// ---- rank mode --------------------------------------------------------------------------

/* The responses of a rank line into out (pointers into in); their count, or 0 when the
 * line is bad (reported). */
static int rank_responses(Reader *r, json_t *in, const char **out) {
    json_t *v = json_object_get(in, "responses");
    if (!json_is_array(v)) {
        bad_line(r, "field \"responses\" must be an array of strings (rank lines are "
                    "{\"prompt\",\"responses\":[...]})");
        return 0;
    }
    size_t k = json_array_size(v);
    if (k < 2 || k > ANNOTATOR_RANK_MAX) {
        bad_line(r, "field \"responses\" holds %zu responses; 2 to %d are needed", k,
                 ANNOTATOR_RANK_MAX);
        return 0;
    }
    for (size_t i = 0; i < k; i++) {
        if (!json_is_string(json_array_get(v, i))) {
            bad_line(r, "responses[%zu] must be a string", i);
            return 0;
        }
        out[i] = json_string_value(json_array_get(v, i));
    }
    return (int)k;
}

static int run_rank(const Opts *o, Judge *j, Reader *r) {
    char err[ERRBUF_LEN], when[64];
    const char *resp[ANNOTATOR_RANK_MAX];
    double g[ANNOTATOR_RANK_MAX];
    int ranks[ANNOTATOR_RANK_MAX];
    long ties = 0;
    json_t *in;
    while ((in = next_object(r))) {
        const char *prompt = need_str(r, in, "prompt", "rank lines are {\"prompt\",\"responses\"}");
        int k = prompt ? rank_responses(r, in, resp) : 0;
        JudgeScores sc;
        int i = 0;
        for (; i < k && judge_score(j, prompt, resp[i], &sc, err) == 0; i++) g[i] = sc.total;
        if (k == 0 || i < k) {
            if (k > 0) bad_line(r, "%s", err);
            json_decref(in);
            continue;
        }
        const Annotator *ann = &o->ann[(r->line - 1) % o->n_ann];
        Rng rng;
        rng_init_keyed(&rng, o->seed, (uint64_t)r->line, 0x6a756467ULL /* "judg" */);
        annotator_rank(ann, g, k, &rng, ranks);
        iso_time(when, sizeof when, o);
        json_t *out = json_object(), *rk = json_array();
        for (i = 0; i < k; i++) {
            json_array_append_new(rk, json_integer(ranks[i]));
            for (int m = i + 1; m < k; m++) ties += ranks[i] == ranks[m];
        }
        json_object_set_new(out, "prompt", json_string(prompt));
        json_object_set(out, "responses", json_object_get(in, "responses"));
        json_object_set_new(out, "ranks", rk);
        json_object_set_new(out, "category", json_string(category_out(&sc, in)));
        json_object_set_new(out, "annotator", json_string(ann->name));
        json_object_set_new(out, "label", json_string("rank"));
        json_object_set_new(out, "time", json_string(when));
        json_object_set_new(out, "judge", json_string(o->judge_spec));
        json_t *id = json_object_get(in, "id");
        if (json_is_string(id) || json_is_integer(id)) json_object_set(out, "id", id);
        emit(out);
        r->n_ok++;
        json_decref(in);
    }
    fprintf(stderr, "rlhf-judge: %d prompts ranked (%ld tied pairs), %d bad lines skipped\n",
            r->n_ok, ties, r->n_bad);
    return 0;
}

// ---- score mode -------------------------------------------------------------------------

typedef struct {
    int n, refusals;
    double sum[5];
} CatSum;

static json_t *scores_json(const JudgeScores *s) {
    json_t *o = json_object();
    json_object_set_new(o, "total", json_real(s->total));
    const char *names[] = {"helpfulness", "harmlessness", "politeness", "concision"};
    const double v[] = {s->helpfulness, s->harmlessness, s->politeness, s->concision};
    for (int i = 0; i < 4; i++)
        json_object_set_new(o, names[i], v[i] < 0 ? json_null() : json_real(v[i]));
    json_object_set_new(o, "refusal", json_boolean(s->refusal));
    json_object_set_new(o, "words", json_integer(s->words));
    return o;
}

static void add_sum(CatSum *cs, const JudgeScores *s) {
    CatSum *c = &cs[s->category];
    c->n++;
    c->refusals += s->refusal != 0;
    const double v[] = {s->total, s->helpfulness, s->harmlessness, s->politeness, s->concision};
    for (int i = 0; i < 5; i++)
        c->sum[i] += v[i];
}

static int run_score(const Opts *o, Judge *j, Reader *r) {
    char err[ERRBUF_LEN];
    CatSum cs[TASK_N_CAT + 1];
    memset(cs, 0, sizeof cs);
    int pairs = 0, agree = 0, gold_ties = 0;
    json_t *in;
    while ((in = next_object(r))) {
        const char *prompt = need_str(r, in, "prompt", "score lines need \"prompt\"");
        if (!prompt) {
            json_decref(in);
            continue;
        }
        /* which responses: "response", or a pair as chosen/rejected or a/b */
        const char *keys[2] = {NULL, NULL};
        if (json_object_get(in, "response"))
            keys[0] = "response";
        else if (json_object_get(in, "chosen") || json_object_get(in, "rejected")) {
            keys[0] = "chosen";
            keys[1] = "rejected";
        } else if (json_object_get(in, "a") || json_object_get(in, "b")) {
            keys[0] = "a";
            keys[1] = "b";
        } else {
            bad_line(r, "no response to score: expected \"response\", \"chosen\"+\"rejected\" or "
                        "\"a\"+\"b\"");
            json_decref(in);
            continue;
        }
        const char *text[2] = {NULL, NULL};
        JudgeScores s[2];
        int ok = 1;
        for (int k = 0; k < 2 && keys[k] && ok; k++) {
            text[k] = need_str(r, in, keys[k], "the response to score");
            if (!text[k])
                ok = 0;
            else if (judge_score(j, prompt, text[k], &s[k], err) != 0) {
                bad_line(r, "%s", err);
                ok = 0;
            }
        }
        if (!ok) {
            json_decref(in);
            continue;
        }
        json_t *out = json_object();
        json_object_set_new(out, "line", json_integer(r->line));
        json_object_set_new(out, "category", json_string(category_out(&s[0], in)));
        json_object_set_new(out, "kind", json_string(task_kind_name(s[0].kind)));
        if (!keys[1]) {
            json_t *sc = scores_json(&s[0]);
            json_object_update(out, sc);
            json_decref(sc);
            add_sum(cs, &s[0]);
        } else {
            json_object_set_new(out, keys[0], scores_json(&s[0]));
            json_object_set_new(out, keys[1], scores_json(&s[1]));
            add_sum(cs, &s[0]);
            add_sum(cs, &s[1]);
            if (!strcmp(keys[0], "chosen")) {
                pairs++;
                if (s[0].total > s[1].total) agree++;
                if (s[0].total == s[1].total) gold_ties++;
                json_object_set_new(
                    out, "gold_agrees",
                    s[0].total == s[1].total ? json_null() : json_boolean(s[0].total > s[1].total));
            }
        }
        emit(out);
        r->n_ok++;
        json_decref(in);
    }
    int rule = !strncmp(o->judge_spec, "rule:", 5);
    fprintf(stderr, "rlhf-judge score (%s, task seed %llu): %d lines, %d bad lines skipped\n",
            o->judge_spec, (unsigned long long)o->task_seed, r->n_ok, r->n_bad);
    fprintf(stderr, "%-9s %6s %7s %7s %7s %7s %7s %8s\n", "category", "n", "total", "help", "harm",
            "polite", "concise", "refusal");
    CatSum all;
    memset(&all, 0, sizeof all);
    for (int c = 0; c <= TASK_N_CAT; c++) {
        CatSum *x = &cs[c];
        all.n += x->n;
        all.refusals += x->refusals;
        for (int i = 0; i < 5; i++)
            all.sum[i] += x->sum[i];
    }
    for (int c = 0; c <= TASK_N_CAT + 1; c++) {
        CatSum *x = c <= TASK_N_CAT ? &cs[c] : &all;
        if (!x->n) continue;
        const char *name = c <= TASK_N_CAT ? task_category_name((TaskCategory)c) : "all";
        if (rule)
            fprintf(stderr, "%-9s %6d %7.3f %7s %7s %7s %7s %8.3f\n", name, x->n, x->sum[0] / x->n,
                    "-", "-", "-", "-", (double)x->refusals / x->n);
        else
            fprintf(stderr, "%-9s %6d %7.3f %7.3f %7.3f %7.3f %7.3f %8.3f\n", name, x->n,
                    x->sum[0] / x->n, x->sum[1] / x->n, x->sum[2] / x->n, x->sum[3] / x->n,
                    x->sum[4] / x->n, (double)x->refusals / x->n);
    }
    if (pairs)
        fprintf(stderr,
                "pairs: %d; the judge scores chosen above rejected in %.4f (equal in %.4f)\n",
                pairs, (double)agree / pairs, (double)gold_ties / pairs);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) usage_error("rlhf-judge", "--judge SPEC and an input file are required");
    Opts o;
    parse_args(&o, argc, argv);
    char err[ERRBUF_LEN];
    Judge j;
    if (judge_init(&j, o.judge_spec, o.task_seed, err) != 0) fatal("--judge: %s", err);
    Reader r = {0};
    r.path = o.in_path;
    r.skip_bad = o.skip_bad;
    r.f = !strcmp(o.in_path, "-") ? stdin : fopen(o.in_path, "rb");
    if (!r.f) fatal("%s: cannot open: %s", o.in_path, strerror(errno));
    int rc = o.score_mode ? run_score(&o, &j, &r) : o.rank ? run_rank(&o, &j, &r) : run_label(&o, &j, &r);
    if (ferror(r.f)) fatal("%s: read error", o.in_path);
    if (r.f != stdin) fclose(r.f);
    free(r.buf);
    judge_free(&j);
    if (fflush(stdout) != 0 || ferror(stdout)) fatal("writing the output failed");
    if (rc == 0 && r.n_ok == 0) {
        fprintf(stderr, "rlhf-judge: error: %s: no valid line\n", o.in_path);
        return 1;
    }
    return rc;
}
