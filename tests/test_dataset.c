/*
 * tests/test_dataset.c — JSONL datasets and the data order: valid records of every kind,
 * every kind of bad line with its file:line message, skip vs fail, the warning limit,
 * rlhf-label logs (tie/skip left out, undo as a stack), a file changed after indexing,
 * line-length limits at the boundary, a larger file read back at random; permutations
 * (a permutation, per epoch, keyed by (seed, epoch) only), cursor save/restore across
 * epoch boundaries, sharding over 1, 2, 3 ranks, the held-out split and truncation.
 * Files go under $RLHF_TEST_TMP (or /tmp).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "dataset.h"
#include "rng.h"
#include "test.h"
#include "util.h"

static char err[ERRBUF_LEN];
static char tmpdir[400];

static const char *write_file(const char *name, const char *content, size_t len) {
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    ASSERT(f);
    if (len) ASSERT(fwrite(content, 1, len, f) == len);
    fclose(f);
    return path;
}
static const char *write_text(const char *name, const char *content) {
    return write_file(name, content, strlen(content));
}

/* Open with the given policy, capturing the log text into *log (caller frees). */
static int open_log(Dataset *d, const char *path, DataKind kind, DataBadPolicy bad, size_t max_line,
                    int max_warn, char **log) {
    size_t len;
    FILE *f = open_memstream(log, &len);
    ASSERT(f);
    DataOptions o = {.bad = bad, .max_line_bytes = max_line, .max_warnings = max_warn, .log = f};
    err[0] = 0;
    int rc = dataset_open(d, path, kind, &o, err);
    fclose(f);
    return rc;
}

#define CHECK_HAS(text, substr)                                                                    \
    CHECK_MSG(strstr((text), (substr)) != NULL, "'%s' lacks '%s'", (text), (substr))

static void test_sft_valid(void) {
    const char *path = write_text(
        "sft.jsonl",
        "{\"prompt\": \"What is 2+2?\", \"response\": \"4\", \"extra\": [1, {}]}\n"
        "\n"
        "   \t\n"
        "{\"prompt\": \"héllo ✓\", \"response\": \"line\\nbreak\", \"category\": \"math\"}\r\n"
        "{\"response\": \"last\", \"prompt\": \"no newline\", \"category\": null}");
    Dataset d;
    char *log = NULL;
    int rc = open_log(&d, path, DATA_SFT, DATA_BAD_FAIL, 0, 0, &log);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_EQ_INT(d.n, 3);
    CHECK_EQ_INT(d.n_lines, 5);
    CHECK_EQ_INT(d.n_blank, 2);
    CHECK_EQ_INT(d.n_bad, 0);
    CHECK(strlen(log) == 0);
    DataRecord r = {0};
    CHECK(dataset_get(&d, 0, &r, err) == 0);
    CHECK(strcmp(r.prompt, "What is 2+2?") == 0 && strcmp(r.response, "4") == 0);
    CHECK(r.chosen == NULL && r.category == NULL);
    CHECK(dataset_get(&d, 1, &r, err) == 0);
    CHECK(strcmp(r.prompt, "héllo ✓") == 0);
    CHECK(strcmp(r.response, "line\nbreak") == 0);
    CHECK(r.category && strcmp(r.category, "math") == 0);
    CHECK(dataset_get(&d, 2, &r, err) == 0);
    CHECK(strcmp(r.prompt, "no newline") == 0 && strcmp(r.response, "last") == 0);
    CHECK(r.category == NULL);
    /* records can be read in any order, repeatedly */
    CHECK(dataset_get(&d, 0, &r, err) == 0 && strcmp(r.response, "4") == 0);
    data_record_free(&r);
    data_record_free(&r); /* twice is fine */
    dataset_free(&d);
    dataset_free(&d);
    free(log);
}

/* Every kind of bad line: the message names file:line and the problem. */
static void test_bad_lines(void) {
    struct {
        const char *line, *expect;
        DataKind kind;
    } cases[] = {
        {"{\"prompt\": \"a\", \"response\": }", "malformed JSON at column", DATA_SFT},
        {"{\"prompt\": \"a\", \"response\": \"b\"", "malformed JSON", DATA_SFT},
        {"{\"prompt\": \"a\", \"prompt\": \"b\", \"response\": \"c\"}",
         "malformed JSON at column 24: duplicate object key", DATA_SFT},
        {"[1, 2]", "expected a JSON object {...}, found an array", DATA_SFT},
        {"\"just a string\"", "expected a JSON object {...}, found a string", DATA_SFT},
        {"{\"prompt\": \"a\"}",
         "missing field \"response\" (an sft record needs \"prompt\" and \"response\")", DATA_SFT},
        {"{\"response\": \"a\"}", "missing field \"prompt\"", DATA_SFT},
        {"{\"prompt\": null, \"response\": \"a\"}", "missing field \"prompt\"", DATA_SFT},
        {"{\"prompt\": 3, \"response\": \"x\"}",
         "field \"prompt\" must be a string, found a number", DATA_SFT},
        {"{\"prompt\": \"p\", \"response\": [\"x\"]}",
         "field \"response\" must be a string, found an array", DATA_SFT},
        {"{\"prompt\": \"p\", \"response\": true}",
         "field \"response\" must be a string, found a boolean", DATA_SFT},
        {"{\"prompt\": \"p\", \"response\": \"x\", \"category\": 5}",
         "field \"category\" must be a string", DATA_SFT},
        {"{\"prompt\": \"p\xff\", \"response\": \"x\"}", "invalid UTF-8 at byte 14 of the line",
         DATA_SFT},
        {"{\"prompt\": \"\xed\xa0\x80\", \"response\": \"x\"}", "invalid UTF-8", DATA_SFT},
        {"{\"prompt\": \"a\\u0000b\", \"response\": \"x\"}", "malformed JSON", DATA_SFT},
        {"{\"prompt\": \"p\", \"chosen\": \"a\"}",
         "missing field \"rejected\" (a preference record needs \"prompt\", \"chosen\" and "
         "\"rejected\")",
         DATA_PREF},
        {"{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": 1.5}",
         "field \"rejected\" must be a string, found a number", DATA_PREF},
        {"{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"annotator\": {}}",
         "field \"annotator\" must be a string, found an object", DATA_PREF},
        {"{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"p_chosen\": 1.5}",
         "field \"p_chosen\" = 1.5: must be in [0, 1]", DATA_PREF},
        {"{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"p_chosen\": \"0.7\"}",
         "field \"p_chosen\" must be a number in [0, 1] (the probability that chosen is "
         "preferred), found a string", DATA_PREF},
        {"{\"category\": \"x\"}", "missing field \"prompt\" (a prompt record needs \"prompt\")",
         DATA_PROMPT},
        {"{\"prompt\": {\"text\": \"x\"}}", "field \"prompt\" must be a string, found an object",
         DATA_PROMPT},
    };
    const char *good[] = {"{\"prompt\": \"p\", \"response\": \"r\"}",
                          "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}",
                          "{\"prompt\": \"p\"}"};
    int nc = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < nc; i++) {
        /* line 1 good, line 2 blank, line 3 bad, line 4 good */
        char text[1024];
        snprintf(text, sizeof text, "%s\n\n%s\n%s\n", good[cases[i].kind], cases[i].line,
                 good[cases[i].kind]);
        const char *path = write_text("bad.jsonl", text);
        char expect[1200];
        snprintf(expect, sizeof expect, "%s:3: %s", path, cases[i].expect);
        Dataset d;
        char *log = NULL;
        /* skip: a warning with file:line, the two good records kept */
        int rc = open_log(&d, path, cases[i].kind, DATA_BAD_SKIP, 0, 0, &log);
        CHECK_MSG(rc == 0, "case %d: %s", i, err);
        CHECK_EQ_INT(d.n, 2);
        CHECK_EQ_INT(d.n_bad, 1);
        CHECK_MSG(strstr(log, expect) != NULL, "case %d: log '%s' lacks '%s'", i, log, expect);
        CHECK_HAS(log, "skipped 1 bad line of 4");
        CHECK_HAS(d.first_bad, expect);
        dataset_free(&d);
        free(log);
        /* fail: the open fails with the same message */
        rc = open_log(&d, path, cases[i].kind, DATA_BAD_FAIL, 0, 0, &log);
        CHECK_EQ_INT(rc, -1);
        CHECK_MSG(strstr(err, expect) != NULL, "case %d: err '%s' lacks '%s'", i, err, expect);
        CHECK_HAS(err, "run.bad_data = fail");
        free(log);
    }
}

static void test_file_errors(void) {
    Dataset d;
    char *log = NULL;
    const char *path = write_text("empty.jsonl", "");
    CHECK_EQ_INT(open_log(&d, path, DATA_SFT, DATA_BAD_SKIP, 0, 0, &log), -1);
    CHECK_HAS(err, "empty.jsonl: empty file (0 bytes)");
    free(log);
    path = write_text("blank.jsonl", "\n\n  \n");
    CHECK_EQ_INT(open_log(&d, path, DATA_PREF, DATA_BAD_SKIP, 0, 0, &log), -1);
    CHECK_HAS(err, "blank.jsonl: no valid pref record in 3 lines");
    free(log);
    path = write_text("allbad.jsonl", "{\"prompt\": 1}\nnot json\n");
    CHECK_EQ_INT(open_log(&d, path, DATA_PROMPT, DATA_BAD_SKIP, 0, 0, &log), -1);
    CHECK_HAS(err, "allbad.jsonl: no valid prompt record in 2 lines (2 bad; the first: ");
    CHECK_HAS(err, "allbad.jsonl:1: field \"prompt\" must be a string");
    free(log);
    CHECK_EQ_INT(open_log(&d, "/nonexistent/x.jsonl", DATA_SFT, DATA_BAD_SKIP, 0, 0, &log), -1);
    CHECK_HAS(err, "/nonexistent/x.jsonl: cannot open");
    free(log);
    CHECK_EQ_INT(open_log(&d, tmpdir, DATA_SFT, DATA_BAD_SKIP, 0, 0, &log), -1);
    CHECK_HAS(err, "not a regular file");
    free(log);
    /* opt NULL: skip, silent */
    path = write_text("quiet.jsonl", "{\"prompt\": \"a\"}\nbad\n");
    CHECK(dataset_open(&d, path, DATA_PROMPT, NULL, err) == 0);
    CHECK_EQ_INT(d.n, 1);
    CHECK_EQ_INT(d.n_bad, 1);
    dataset_free(&d);
}

/* Lines of exactly max_line_bytes are fine, one more byte is bad; a huge line is drained. */
static void test_long_lines(void) {
    const size_t max = 64;
    char rec[200], text[4096];
    /* {"prompt": "xxx"} is 14 bytes + the x's */
    int nx = (int)max - 14;
    snprintf(rec, sizeof rec, "{\"prompt\": \"%.*s\"}", nx,
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    CHECK_EQ_INT(strlen(rec), max);
    char longer[200];
    snprintf(longer, sizeof longer, "{\"prompt\": \"y%.*s\"}", nx,
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    char *huge = xmalloc(300001);
    memset(huge, 'z', 300000);
    huge[300000] = 0;
    snprintf(text, sizeof text, "%s\n%s\n", rec, longer);
    size_t tl = strlen(text);
    char *all = xmalloc(tl + 300000 + 64);
    memcpy(all, text, tl);
    memcpy(all + tl, huge, 300000);
    memcpy(all + tl + 300000, "\n{\"prompt\": \"after\"}\n", 21);
    const char *path = write_file("long.jsonl", all, tl + 300000 + 21);
    Dataset d;
    char *log = NULL;
    int rc = open_log(&d, path, DATA_PROMPT, DATA_BAD_SKIP, max, 0, &log);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_EQ_INT(d.n, 2);
    CHECK_EQ_INT(d.n_bad, 2);
    CHECK_HAS(log, "long.jsonl:2: line longer than 64 bytes");
    CHECK_HAS(log, "long.jsonl:3: line longer than 64 bytes");
    DataRecord r = {0};
    CHECK(dataset_get(&d, 1, &r, err) == 0 && strcmp(r.prompt, "after") == 0);
    CHECK(dataset_get(&d, 0, &r, err) == 0 && strlen(r.prompt) == (size_t)nx);
    data_record_free(&r);
    dataset_free(&d);
    free(log);
    CHECK_EQ_INT(open_log(&d, path, DATA_PROMPT, DATA_BAD_FAIL, max, 0, &log), -1);
    CHECK_HAS(err, "long.jsonl:2: line longer than 64 bytes");
    free(log);
    /* the default limit (1 MiB) accepts the 300 kB line as a line (and rejects it as JSON) */
    CHECK_EQ_INT(open_log(&d, path, DATA_PROMPT, DATA_BAD_FAIL, 0, 0, &log), -1);
    CHECK_HAS(err, "long.jsonl:3: malformed JSON");
    free(log);
    free(huge);
    free(all);
}

/* Past the warning limit, lines are only counted; the summary gives the total. */
static void test_warning_limit(void) {
    char *text = xmalloc(64 * 40);
    size_t o = 0;
    o += (size_t)sprintf(text + o, "{\"prompt\": \"ok\"}\n");
    for (int i = 0; i < 30; i++) o += (size_t)sprintf(text + o, "{\"prompt\": %d}\n", i);
    const char *path = write_file("many.jsonl", text, o);
    Dataset d;
    char *log = NULL;
    CHECK(open_log(&d, path, DATA_PROMPT, DATA_BAD_SKIP, 0, 5, &log) == 0);
    CHECK_EQ_INT(d.n, 1);
    CHECK_EQ_INT(d.n_bad, 30);
    int shown = 0;
    for (const char *p = log; (p = strstr(p, "line skipped")) != NULL; p++) shown++;
    CHECK_EQ_INT(shown, 5);
    CHECK_HAS(log, "many.jsonl:6: field \"prompt\" must be a string");
    CHECK(strstr(log, "many.jsonl:7:") == NULL);
    CHECK_HAS(log, "more bad lines; only their count is reported");
    CHECK_HAS(log, "skipped 30 bad lines of 31 (first: ");
    dataset_free(&d);
    free(log);
    free(text);
}

static void test_pref_and_prompts(void) {
    const char *path =
        write_text("prefs.jsonl", "{\"prompt\": \"p1\", \"chosen\": \"good\", \"rejected\": "
                                  "\"bad\", \"category\": \"math\", \"annotator\": \"ann1\"}\n"
                                  "{\"prompt\": \"p2\", \"chosen\": \"c\", \"rejected\": \"r\", "
                                  "\"p_chosen\": 0.75}\n");
    Dataset d;
    CHECK(dataset_open(&d, path, DATA_PREF, NULL, err) == 0);
    CHECK_EQ_INT(d.n, 2);
    DataRecord r = {0};
    CHECK(dataset_get(&d, 0, &r, err) == 0);
    CHECK(!strcmp(r.prompt, "p1") && !strcmp(r.chosen, "good") && !strcmp(r.rejected, "bad"));
    CHECK(r.category && !strcmp(r.category, "math"));
    CHECK(r.annotator && !strcmp(r.annotator, "ann1"));
    CHECK(r.response == NULL);
    CHECK(r.p_chosen == 1.0); /* no soft label: hard */
    CHECK(dataset_get(&d, 1, &r, err) == 0);
    CHECK(r.category == NULL && r.annotator == NULL);
    CHECK(r.p_chosen == 0.75);
    dataset_free(&d);
    /* the same file as prompts: extra fields ignored */
    CHECK(dataset_open(&d, path, DATA_PROMPT, NULL, err) == 0);
    CHECK_EQ_INT(d.n, 2);
    CHECK(dataset_get(&d, 1, &r, err) == 0 && !strcmp(r.prompt, "p2") && r.chosen == NULL);
    dataset_free(&d);
    /* ... and not as SFT (no response): no valid record */
    CHECK_EQ_INT(dataset_open(&d, path, DATA_SFT, NULL, err), -1);
    CHECK_HAS(err, "missing field \"response\"");
    data_record_free(&r);
}

/* A raw rlhf-label log: A/B pairs kept, tie/skip left out, undo cancels the latest live
 * judgment of (annotator, id), like a stack; an undo with nothing to cancel is bad. */
static void test_label_log(void) {
    const char *path =
        write_text("log.jsonl",
                   /* 1 */ "{\"prompt\":\"q1\",\"chosen\":\"a1\",\"rejected\":\"b1\",\"annotator\":"
                           "\"ann\",\"label\":\"A\",\"id\":\"i1\"}\n"
                           /* 2 */ "{\"prompt\":\"q2\",\"a\":\"x\",\"b\":\"y\",\"annotator\":"
                           "\"ann\",\"label\":\"tie\",\"id\":\"i2\"}\n"
                           /* 3 */ "{\"prompt\":\"q3\",\"a\":\"x\",\"b\":\"y\",\"annotator\":"
                           "\"ann\",\"label\":\"skip\",\"id\":7}\n"
                           /* 4 */ "{\"prompt\":\"q1\",\"chosen\":\"b1\",\"rejected\":\"a1\","
                           "\"annotator\":\"ann\",\"label\":\"B\",\"id\":\"i1\"}\n"
                           /* 5 */ "{\"undo\":\"i1\",\"annotator\":\"ann\",\"time\":\"t\"}\n"
                           /* 6 */ "{\"prompt\":\"q1\",\"chosen\":\"a1\",\"rejected\":\"b1\","
                           "\"annotator\":\"bob\",\"label\":\"A\",\"id\":\"i1\"}\n"
                           /* 7 */ "{\"undo\":7,\"annotator\":\"ann\"}\n"
                           /* 8 */ "{\"undo\":7,\"annotator\":\"ann\"}\n"
                           /* 9 */ "{\"prompt\":\"q4\",\"chosen\":\"c4\",\"rejected\":\"r4\","
                           "\"annotator\":\"ann\",\"label\":\"A\",\"id\":\"i4\"}\n"
                           /*10 */ "{\"undo\":\"i4\",\"annotator\":\"ann\"}\n"
                           /*11 */ "{\"undo\":\"nope\",\"annotator\":\"ann\"}\n"
                           /*12 */ "{\"undo\":[1],\"annotator\":\"ann\"}\n"
                           /*13 */ "{\"prompt\":\"q5\",\"chosen\":\"c5\",\"rejected\":\"r5\"}\n");
    Dataset d;
    char *log = NULL;
    int rc = open_log(&d, path, DATA_PREF, DATA_BAD_SKIP, 0, 0, &log);
    CHECK_MSG(rc == 0, "%s", err);
    /* live pairs: line 1 (ann's first i1 judgment; line 4 undone by line 5), line 6 (bob),
     * line 13; line 9 undone by line 10 */
    CHECK_EQ_INT(d.n, 3);
    CHECK_EQ_INT(d.n_nonpair, 2);
    CHECK_EQ_INT(d.n_undo, 3);
    CHECK_EQ_INT(d.n_undone, 2);
    CHECK_EQ_INT(d.n_bad, 3);
    CHECK_HAS(log,
              "log.jsonl:8: undo of item \"7\" by \"ann\" has no judgment before it to cancel");
    CHECK_HAS(log, "log.jsonl:11: undo of item \"nope\" by \"ann\"");
    CHECK_HAS(log, "log.jsonl:12: field \"undo\" must be a string or an integer, found an array");
    DataRecord r = {0};
    CHECK(dataset_get(&d, 0, &r, err) == 0 && !strcmp(r.chosen, "a1") &&
          !strcmp(r.annotator, "ann"));
    CHECK(dataset_get(&d, 1, &r, err) == 0 && !strcmp(r.annotator, "bob"));
    CHECK(dataset_get(&d, 2, &r, err) == 0 && !strcmp(r.prompt, "q5"));
    data_record_free(&r);
    dataset_free(&d);
    free(log);
    /* many judgments: the map grows; undo everything but the first of each key */
    char *text = xmalloc(200 * 6000);
    size_t o = 0;
    for (int i = 0; i < 3000; i++)
        o += (size_t)sprintf(text + o,
                             "{\"prompt\":\"q\",\"chosen\":\"c%d\",\"rejected\":\"r\","
                             "\"annotator\":\"a%d\",\"label\":\"A\",\"id\":%d}\n",
                             i, i % 7, i);
    for (int i = 0; i < 3000; i++)
        if (i % 3)
            o += (size_t)sprintf(text + o, "{\"undo\":%d,\"annotator\":\"a%d\"}\n", i, i % 7);
    path = write_file("biglog.jsonl", text, o);
    CHECK(dataset_open(&d, path, DATA_PREF, NULL, err) == 0);
    CHECK_EQ_INT(d.n, 1000);
    CHECK_EQ_INT(d.n_bad, 0);
    CHECK(dataset_get(&d, 1, &r, err) == 0 && !strcmp(r.chosen, "c3"));
    data_record_free(&r);
    dataset_free(&d);
    free(text);
}

/* The file changes after indexing: dataset_get fails cleanly. */
static void test_changed_file(void) {
    const char *path = write_text("chg.jsonl", "{\"prompt\": \"aaaa\"}\n{\"prompt\": \"bbbb\"}\n");
    char p[600];
    snprintf(p, sizeof p, "%s", path);
    Dataset d;
    CHECK(dataset_open(&d, p, DATA_PROMPT, NULL, err) == 0);
    FILE *f = fopen(p, "r+b");
    ASSERT(f);
    fseek(f, 22, SEEK_SET);
    fputs("XX", f); /* breaks record 1's JSON */
    fclose(f);
    DataRecord r = {0};
    CHECK(dataset_get(&d, 0, &r, err) == 0);
    CHECK_EQ_INT(dataset_get(&d, 1, &r, err), -1);
    CHECK_HAS(err, "record 1 at byte 19 no longer parses (the file changed since it was opened");
    CHECK(truncate(p, 10) == 0);
    CHECK_EQ_INT(dataset_get(&d, 1, &r, err), -1);
    CHECK_HAS(err, "is gone");
    data_record_free(&r);
    dataset_free(&d);
}

/* 20000 records streamed, then read back at random. */
static void test_large(void) {
    int n = 20000;
    char *text = xmalloc((size_t)n * 64);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (i % 1000 == 999)
            o += (size_t)sprintf(text + o, "{\"prompt\": %d}\n", i); /* bad */
        else
            o += (size_t)sprintf(text + o, "{\"prompt\": \"p%d\", \"response\": \"r%d\"}\n", i, i);
    }
    const char *path = write_file("large.jsonl", text, o);
    Dataset d;
    CHECK(dataset_open(&d, path, DATA_SFT, NULL, err) == 0);
    CHECK_EQ_INT(d.n, n - 20);
    CHECK_EQ_INT(d.n_bad, 20);
    DataRecord r = {0};
    Rng g;
    rng_init(&g, 5);
    int ok = 1;
    for (int t = 0; t < 2000; t++) {
        int64_t i = (int64_t)rng_below(&g, (uint64_t)d.n);
        int64_t line = i + i / 999; /* bad lines at 999, 1999, ... shift the records */
        char want[32];
        snprintf(want, sizeof want, "p%lld", (long long)line);
        if (dataset_get(&d, i, &r, err) != 0 || strcmp(r.prompt, want) != 0) ok = 0;
    }
    CHECK(ok);
    data_record_free(&r);
    dataset_free(&d);
    free(text);
}

// ----------------------------------------------------------------------------
// data order

static int is_permutation(const int64_t *a, int64_t n) {
    char *seen = xcalloc((size_t)n, 1);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) {
        if (a[i] < 0 || a[i] >= n || seen[a[i]])
            ok = 0;
        else
            seen[a[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_permutation(void) {
    int64_t n = 1000;
    DataSampler s, s2;
    data_sampler_init(&s, n, 42, true);
    data_sampler_init(&s2, n, 42, true);
    int64_t *e0 = xmalloc((size_t)n * sizeof(int64_t)), *e1 = xmalloc((size_t)n * sizeof(int64_t));
    int identity = 1, same01 = 0, equal_other = 1;
    for (int64_t i = 0; i < n; i++) {
        e0[i] = data_sampler_at(&s, 0, i);
        identity &= e0[i] == i;
    }
    for (int64_t i = 0; i < n; i++) {
        e1[i] = data_sampler_at(&s, 1, i);
        same01 += e0[i] == e1[i];
    }
    CHECK(is_permutation(e0, n));
    CHECK(is_permutation(e1, n));
    CHECK(!identity);
    CHECK(same01 < 20); /* ~1 expected by chance */
    /* depends only on (seed, epoch): another sampler, asked out of order, agrees */
    for (int64_t i = n - 1; i >= 0; i--) equal_other &= data_sampler_at(&s2, 1, i) == e1[i];
    for (int64_t i = 0; i < n; i++) equal_other &= data_sampler_at(&s2, 0, i) == e0[i];
    CHECK(equal_other);
    /* another seed, another order */
    DataSampler s3;
    data_sampler_init(&s3, n, 43, true);
    int same_seed = 0;
    for (int64_t i = 0; i < n; i++) same_seed += data_sampler_at(&s3, 0, i) == e0[i];
    CHECK(same_seed < 20);
    /* shuffle off: file order every epoch */
    DataSampler s4;
    data_sampler_init(&s4, n, 42, false);
    int ident = 1;
    for (int64_t i = 0; i < n; i++) ident &= data_sampler_at(&s4, 3, i) == i;
    CHECK(ident);
    /* the batch stream covers each record exactly once per epoch (G does not divide n) */
    DataSampler s5;
    data_sampler_init(&s5, 10, 7, true);
    int64_t stream[40], b[7];
    int k = 0;
    while (k + 7 <= 35) {
        CHECK_EQ_INT(data_sampler_next(&s5, 7, 0, 1, b), 7);
        memcpy(stream + k, b, sizeof b);
        k += 7;
    }
    CHECK_EQ_INT(s5.cur.epoch, 3);
    CHECK_EQ_INT(s5.cur.pos, 5);
    for (int e = 0; e < 3; e++) CHECK(is_permutation(stream + 10 * e, 10));
    for (int i = 0; i < 35; i++) CHECK_EQ_INT(stream[i], data_sampler_at(&s5, i / 10, i % 10));
    data_sampler_free(&s);
    data_sampler_free(&s2);
    data_sampler_free(&s3);
    data_sampler_free(&s4);
    data_sampler_free(&s5);
    data_sampler_free(&s5);
    free(e0);
    free(e1);
}

/* Save the cursor mid-run (mid-epoch, then across an epoch boundary), restore it in a
 * fresh sampler: the same batches follow. */
static void test_cursor(void) {
    int64_t n = 23;
    int G = 5;
    for (int stop = 0; stop < 12; stop++) {
        DataSampler a;
        data_sampler_init(&a, n, 1234, true);
        int64_t b1[5], b2[5];
        for (int i = 0; i < stop; i++) data_sampler_next(&a, G, 0, 1, b1);
        int64_t words[DATA_CURSOR_WORDS];
        data_cursor_save(&a, words);
        DataSampler c;
        data_sampler_init(&c, n, 999 /* overwritten by the cursor's seed */, true);
        CHECK(data_cursor_restore(&c, words, err) == 0);
        int same = 1;
        for (int i = 0; i < 12; i++) {
            data_sampler_next(&a, G, 0, 1, b1);
            data_sampler_next(&c, G, 0, 1, b2);
            same &= memcmp(b1, b2, sizeof b1) == 0;
        }
        CHECK_MSG(same, "restore after %d batches differs", stop);
        CHECK(a.cur.epoch == c.cur.epoch && a.cur.pos == c.cur.pos);
        data_sampler_free(&a);
        data_sampler_free(&c);
    }
    /* a cursor for another dataset size, or a damaged one, is refused */
    DataSampler s;
    data_sampler_init(&s, 10, 1, true);
    int64_t w[DATA_CURSOR_WORDS] = {1, 0, 3, 11};
    CHECK_EQ_INT(data_cursor_restore(&s, w, err), -1);
    CHECK_HAS(err, "saved for 11 records, the dataset now has 10");
    int64_t w2[DATA_CURSOR_WORDS] = {1, 0, 10, 10};
    CHECK_EQ_INT(data_cursor_restore(&s, w2, err), -1);
    CHECK_HAS(err, "invalid (epoch 0, position 10 of 10)");
    int64_t w3[DATA_CURSOR_WORDS] = {1, -1, 0, 10};
    CHECK_EQ_INT(data_cursor_restore(&s, w3, err), -1);
    data_sampler_free(&s);
}

/* Over 1, 2, 3 ranks every global batch is covered exactly once, in the same order. */
static void test_sharding(void) {
    int64_t n = 37;
    int sizes[] = {1, 2, 3, 6, 8};
    for (int si = 0; si < 5; si++) {
        int G = sizes[si];
        DataSampler one;
        data_sampler_init(&one, n, 77, true);
        for (int R = 1; R <= 3; R++) {
            DataSampler ranks[3];
            for (int r = 0; r < R; r++) data_sampler_init(&ranks[r], n, 77, true);
            DataSampler ref;
            data_sampler_init(&ref, n, 77, true);
            int ok = 1;
            for (int batch = 0; batch < 20; batch++) {
                int64_t full[8], got[8];
                int total = 0;
                CHECK_EQ_INT(data_sampler_next(&ref, G, 0, 1, full), G);
                for (int r = 0; r < R; r++) {
                    int cnt = data_sampler_next(&ranks[r], G, r, R, got + total);
                    if (cnt != data_shard_size(G, r, R)) ok = 0;
                    total += cnt;
                }
                if (total != G || memcmp(full, got, (size_t)G * sizeof(int64_t)) != 0) ok = 0;
                for (int r = 0; r < R; r++)
                    if (ranks[r].cur.pos != ref.cur.pos || ranks[r].cur.epoch != ref.cur.epoch)
                        ok = 0;
            }
            CHECK_MSG(ok, "G=%d R=%d", G, R);
            for (int r = 0; r < R; r++) data_sampler_free(&ranks[r]);
            data_sampler_free(&ref);
        }
        data_sampler_free(&one);
    }
    /* the documented slices */
    int b, e;
    data_shard(10, 0, 3, &b, &e);
    CHECK(b == 0 && e == 3);
    data_shard(10, 1, 3, &b, &e);
    CHECK(b == 3 && e == 6);
    data_shard(10, 2, 3, &b, &e);
    CHECK(b == 6 && e == 10);
    data_shard(2, 0, 3, &b, &e);
    CHECK(b == 0 && e == 0); /* more ranks than records: some get none */
}

static void test_split(void) {
    int64_t n = 10000, *tr, *ev, ntr, nev;
    data_split(n, 0.1, 3, &tr, &ntr, &ev, &nev);
    CHECK_EQ_INT(ntr + nev, n);
    CHECK_MSG(nev > 850 && nev < 1150, "eval part %lld of %lld", (long long)nev, (long long)n);
    char *seen = xcalloc((size_t)n, 1);
    int ok = 1;
    for (int64_t i = 0; i < ntr; i++) seen[tr[i]]++;
    for (int64_t i = 0; i < nev; i++) {
        seen[ev[i]]++;
        ok &= data_split_is_eval(ev[i], 0.1, 3);
    }
    for (int64_t i = 0; i < n; i++) ok &= seen[i] == 1;
    CHECK(ok);
    /* deterministic; another seed gives another split; a larger fraction is a superset */
    int64_t *tr2, *ev2, ntr2, nev2;
    data_split(n, 0.1, 3, &tr2, &ntr2, &ev2, &nev2);
    CHECK(nev2 == nev && memcmp(ev, ev2, (size_t)nev * sizeof(int64_t)) == 0);
    free(tr2), free(ev2);
    data_split(n, 0.1, 4, &tr2, &ntr2, &ev2, &nev2);
    CHECK(nev2 != nev || memcmp(ev, ev2, (size_t)nev * sizeof(int64_t)) != 0);
    free(tr2), free(ev2);
    int superset = 1;
    for (int64_t i = 0; i < nev; i++) superset &= data_split_is_eval(ev[i], 0.3, 3);
    CHECK(superset);
    data_split(n, 0.0, 3, &tr2, &ntr2, &ev2, &nev2);
    CHECK(nev2 == 0 && ntr2 == n);
    free(tr2), free(ev2);
    data_split(n, 1.0, 3, &tr2, &ntr2, &ev2, &nev2);
    CHECK(nev2 == n && ntr2 == 0);
    free(tr2), free(ev2);
    free(tr), free(ev), free(seen);
}

static void test_truncate(void) {
    int p[6] = {1, 2, 3, 4, 5, 6}, r[5] = {10, 11, 12, 13, 14};
    int np = 6, nr = 5;
    CHECK_EQ_INT(data_truncate(p, &np, 4, true, r, &nr, 3), DATA_CUT_PROMPT | DATA_CUT_RESPONSE);
    CHECK(np == 4 && p[0] == 3 && p[1] == 4 && p[2] == 5 && p[3] == 6);
    CHECK(nr == 3 && r[0] == 10 && r[2] == 12);
    int q[6] = {1, 2, 3, 4, 5, 6};
    int nq = 6;
    CHECK_EQ_INT(data_truncate(q, &nq, 2, false, NULL, NULL, 0), DATA_CUT_PROMPT);
    CHECK(nq == 2 && q[0] == 1 && q[1] == 2);
    int s[3] = {7, 8, 9}, t[2] = {1, 2};
    int ns = 3, nt = 2;
    CHECK_EQ_INT(data_truncate(s, &ns, 3, true, t, &nt, 2), 0);
    CHECK(ns == 3 && s[0] == 7 && nt == 2);
}

static void test_options_from_config(void) {
    RlhfConfig c;
    char *ov[] = {"run.bad_data=fail", "data.max_line_bytes=4096"};
    CHECK(config_load(&c, NULL, 2, ov, err) == 0);
    DataOptions o = data_options_from_config(&c, stderr);
    CHECK(o.bad == DATA_BAD_FAIL);
    CHECK_EQ_INT(o.max_line_bytes, 4096);
    CHECK(o.log == stderr);
    config_defaults(&c);
    o = data_options_from_config(&c, NULL);
    CHECK(o.bad == DATA_BAD_SKIP);
    CHECK_EQ_INT(o.max_line_bytes, 1 << 20);
}

/* Random mutations of a valid file: open returns 0 or -1, never crashes; every record an
 * open accepts reads back. */
static void test_fuzz(void) {
    const char *good =
        "{\"prompt\": \"p1\", \"chosen\": \"a\", \"rejected\": \"b\", \"label\": \"A\", \"id\": 1, "
        "\"annotator\": \"x\"}\n"
        "{\"undo\": 1, \"annotator\": \"x\"}\n"
        "{\"prompt\": \"p2\", \"chosen\": \"\\u00e9\", \"rejected\": \"b\"}\n"
        "{\"prompt\": \"p3\", \"a\": \"a\", \"b\": \"b\", \"label\": \"tie\", \"id\": 2}\n";
    size_t n = strlen(good);
    char *buf = xmalloc(n + 1);
    static const char junk[] = "{}[]\":,\\\n\r 0123456789.eE+-ntfu\xff\xc3\x80";
    Rng r;
    rng_init(&r, 77);
    int opened = 0, read_ok = 1;
    for (int t = 0; t < 800; t++) {
        memcpy(buf, good, n + 1);
        int edits = 1 + (int)rng_below(&r, 4);
        for (int e = 0; e < edits; e++)
            buf[rng_below(&r, n)] = junk[rng_below(&r, sizeof junk - 1)];
        const char *path = write_file("fuzz.jsonl", buf, n);
        for (int kind = 0; kind < 3; kind++) {
            Dataset d;
            if (dataset_open(&d, path, (DataKind)kind, NULL, err) != 0) continue;
            opened++;
            DataRecord rec = {0};
            for (int64_t i = 0; i < d.n; i++) read_ok &= dataset_get(&d, i, &rec, err) == 0;
            data_record_free(&rec);
            dataset_free(&d);
        }
    }
    CHECK(opened > 100);
    CHECK(read_ok);
    free(buf);
}

int main(void) {
    const char *root = getenv("RLHF_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/dataset-XXXXXX", root ? root : "/tmp");
    ASSERT(mkdtemp(tmpdir) != NULL);
    TEST_RUN(test_sft_valid);
    TEST_RUN(test_bad_lines);
    TEST_RUN(test_file_errors);
    TEST_RUN(test_long_lines);
    TEST_RUN(test_warning_limit);
    TEST_RUN(test_pref_and_prompts);
    TEST_RUN(test_label_log);
    TEST_RUN(test_changed_file);
    TEST_RUN(test_large);
    TEST_RUN(test_permutation);
    TEST_RUN(test_cursor);
    TEST_RUN(test_sharding);
    TEST_RUN(test_split);
    TEST_RUN(test_truncate);
    TEST_RUN(test_options_from_config);
    TEST_RUN(test_fuzz);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_EXIT();
}
