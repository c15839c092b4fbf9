/*
 * tests/test_label.c — unit tests of common/label.c, the logic behind rlhf-label:
 * candidate files (good and bad lines, content ids), the judgment log (undo as a stack,
 * torn last line, bad middle lines, several files), the resume set, the records the tool
 * writes (read back through the same reader), append + fsync, Cohen's and Fleiss' kappa
 * against textbook tables worked out by hand below, the statistics of a small log whose
 * every number is derived by hand in the comments, export, and word-wrapping.
 *
 * Temp files go under $RLHF_TEST_TMP (tests/run.sh) or a mkdtemp folder. The terminal
 * tool itself is driven through tmux by tests/t_label.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "label.h"
#include "rng.h"
#include "test.h"
#include "util.h"

static char g_dir[512];

static const char *tmp_path(const char *name) {
    static char buf[4][1024];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", g_dir, name);
    return buf[k];
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
}

// ----------------------------------------------------------------------------

static void test_kinds(void) {
    for (int k = 0; k < LABEL_COUNT; k++)
        CHECK_EQ_INT(label_kind_parse(label_kind_name((LabelKind)k)), k);
    CHECK_EQ_INT(label_kind_parse("a"), -1); /* names are case-sensitive: "A" */
    CHECK_EQ_INT(label_kind_parse("thumbs"), -1);
    CHECK(label_kind_in_mode(LABEL_TIE, LABEL_MODE_PAIR));
    CHECK(!label_kind_in_mode(LABEL_TIE, LABEL_MODE_THUMBS));
    CHECK(label_kind_in_mode(LABEL_SKIP, LABEL_MODE_THUMBS));
    CHECK(!label_kind_in_mode(LABEL_UP, LABEL_MODE_PAIR));
}

/* Content ids must never change (resume and agreement match items by id). The expected
 * values were computed independently with Python:
 *   def fnv(h, b): for x in b: h ^= x; h = h * 1099511628211 % 2**64; return h
 *   h = fnv(14695981039346656037, b"P"); for f in fields: f = f.encode();
 *   h = fnv(h, len(f).to_bytes(8, "little")); h = fnv(h, f)      ->  "h%016x" % h */
static void test_hash_id(void) {
    char id[LABEL_HASH_ID_LEN];
    label_item_hash_id(id, LABEL_MODE_PAIR, "What is 2+2?", "4", "5");
    CHECK(strcmp(id, "h0ed5d3f38b026564") == 0);
    label_item_hash_id(id, LABEL_MODE_THUMBS, "Say hi", "Hi there!", NULL);
    CHECK(strcmp(id, "h4a3a53018b60970a") == 0);
    /* field boundaries matter: ("ab","c") is not ("a","bc") */
    char id2[LABEL_HASH_ID_LEN];
    label_item_hash_id(id, LABEL_MODE_PAIR, "p", "ab", "c");
    label_item_hash_id(id2, LABEL_MODE_PAIR, "p", "a", "bc");
    CHECK(strcmp(id, id2) != 0);
    /* swapping A and B is another item */
    label_item_hash_id(id2, LABEL_MODE_PAIR, "p", "c", "ab");
    CHECK(strcmp(id, id2) != 0);
}

static void test_items_load(void) {
    char err[ERRBUF_LEN];
    LabelItems it;
    const char *p = tmp_path("cand.jsonl");
    write_file(p, "{\"prompt\":\"What is 2+2?\",\"a\":\"4\",\"b\":\"5\"}\n"
                  "\n"
                  "{\"prompt\":\"q\",\"a\":\"x\",\"b\":\"y\",\"id\":\"k1\",\"category\":\"math\"}\r\n"
                  "{\"prompt\":\"q\",\"a\":\"x\",\"b\":\"z\",\"id\":42}");
    CHECK(label_items_load(&it, p, LABEL_MODE_PAIR, err) == 0);
    CHECK_EQ_INT(it.n, 3);
    if (it.n == 3) {
        CHECK(strcmp(it.items[0].id, "h0ed5d3f38b026564") == 0);
        CHECK(it.items[0].category == NULL);
        CHECK_EQ_INT(it.items[0].line, 1);
        CHECK(strcmp(it.items[1].id, "k1") == 0);
        CHECK(strcmp(it.items[1].category, "math") == 0);
        CHECK_EQ_INT(it.items[1].line, 3);
        CHECK(strcmp(it.items[2].id, "42") == 0);
        CHECK(strcmp(it.items[2].b, "z") == 0);
        CHECK_EQ_INT(label_items_find(&it, "k1"), 1);
        CHECK_EQ_INT(label_items_find(&it, "42"), 2);
        CHECK_EQ_INT(label_items_find(&it, "nope"), -1);
    }
    label_items_free(&it);
    label_items_free(&it); /* twice is harmless */

    /* thumbs */
    write_file(p, "{\"prompt\":\"Say hi\",\"response\":\"Hi there!\"}\n");
    CHECK(label_items_load(&it, p, LABEL_MODE_THUMBS, err) == 0);
    CHECK_EQ_INT(it.n, 1);
    if (it.n == 1) {
        CHECK(strcmp(it.items[0].id, "h4a3a53018b60970a") == 0);
        CHECK(it.items[0].b == NULL);
    }
    label_items_free(&it);

    /* every bad line is an error naming path:line and the fix */
    struct {
        const char *text;
        LabelMode mode;
        const char *expect; /* substrings of err */
        const char *expect2;
    } bad[] = {
        {"{\"prompt\":\"a\",\"a\":\"x\",\"b\":\"y\"}\n{\"prompt\": oops}\n", LABEL_MODE_PAIR,
         "cand.jsonl:2:", "not valid JSON"},
        {"{\"prompt\":\"caf\xe9\",\"a\":\"x\",\"b\":\"y\"}\n", LABEL_MODE_PAIR, "cand.jsonl:1:",
         "UTF-8"},
        {"{\"prompt\":\"a\",\"a\":\"x\"}\n", LABEL_MODE_PAIR, "cand.jsonl:1:", "\"b\""},
        {"{\"prompt\":\"a\",\"response\":\"x\"}\n", LABEL_MODE_PAIR, "cand.jsonl:1:",
         "--mode thumbs"},
        {"{\"prompt\":\"a\",\"a\":\"x\",\"b\":\"y\"}\n", LABEL_MODE_THUMBS, "cand.jsonl:1:",
         "--mode pair"},
        {"{\"a\":\"x\",\"b\":\"y\"}\n", LABEL_MODE_PAIR, "cand.jsonl:1:", "\"prompt\""},
        {"{\"prompt\":1,\"a\":\"x\",\"b\":\"y\"}\n", LABEL_MODE_PAIR, "cand.jsonl:1:",
         "must be a string"},
        {"[1,2]\n", LABEL_MODE_PAIR, "cand.jsonl:1:", "JSON object"},
        {"{\"prompt\":\"p\",\"a\":\"x\",\"b\":\"y\",\"id\":\"d\"}\n"
         "{\"prompt\":\"p2\",\"a\":\"x\",\"b\":\"y\",\"id\":\"d\"}\n",
         LABEL_MODE_PAIR, "cand.jsonl:2:", "first at line 1"},
        {"\n\n", LABEL_MODE_PAIR, "cand.jsonl", "no items"},
        {"{\"prompt\":\"p\",\"a\":\"x\",\"b\":\"y\",\"id\":[1]}\n", LABEL_MODE_PAIR,
         "cand.jsonl:1:", "\"id\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(p, bad[i].text);
        err[0] = 0;
        int rc = label_items_load(&it, p, bad[i].mode, err);
        CHECK_MSG(rc == -1, "bad case %zu accepted", i);
        CHECK_MSG(strstr(err, bad[i].expect) && strstr(err, bad[i].expect2),
                  "case %zu: err = \"%s\"", i, err);
        CHECK(it.n == 0 && it.items == NULL);
    }
    CHECK(label_items_load(&it, tmp_path("missing.jsonl"), LABEL_MODE_PAIR, err) == -1);
    CHECK(strstr(err, "missing.jsonl") != NULL);
}

// ----------------------------------------------------------------------------
// the log

#define J(ann, id, lab) \
    "{\"prompt\":\"p\",\"chosen\":\"x\",\"rejected\":\"y\",\"annotator\":\"" ann \
    "\",\"time\":\"2024-01-01T00:00:00Z\",\"label\":\"" lab "\",\"id\":\"" id "\"}\n"
#define T(ann, id, lab) \
    "{\"prompt\":\"p\",\"a\":\"x\",\"b\":\"y\",\"annotator\":\"" ann "\",\"label\":\"" lab \
    "\",\"id\":\"" id "\"}\n"
#define U(ann, id) "{\"undo\":\"" id "\",\"annotator\":\"" ann "\"}\n"

static LabelKind live_label(const LabelLog *log, const char *ann, const char *id) {
    int i = label_log_live(log, ann, id);
    return i < 0 ? (LabelKind)-1 : log->j[i].label;
}

/* undo cancels the last not-cancelled judgment of the same (annotator, id): a stack */
static void test_log_undo(void) {
    char err[ERRBUF_LEN];
    const char *p = tmp_path("undo.jsonl");
    write_file(p, J("alice", "x", "A")  /* 1 */
                  J("alice", "x", "B")  /* 2: re-judged: B is live, A superseded */
                  J("bob", "x", "A")    /* 3 */
                  U("alice", "x")       /* 4: cancels line 2 -> line 1 live again */
                  T("alice", "y", "tie") /* 5 */
                  U("alice", "x")       /* 6: cancels line 1 -> nothing live */
                  U("alice", "x")       /* 7: nothing left to cancel: reported */
                  U("carol", "y"));     /* 8: carol never judged y: reported */
    LabelLog log;
    label_log_init(&log);
    CHECK(label_log_read(&log, p, 0, err) == 0);
    CHECK_EQ_INT(log.n, 4);
    CHECK_EQ_INT(log.n_undo, 2);
    CHECK_EQ_INT(log.n_undo_unmatched, 2);
    CHECK_EQ_INT(log.n_warnings, 2);
    if (log.n_warnings == 2) {
        CHECK(strstr(log.warnings[0], "undo.jsonl:7:") != NULL);
        CHECK(strstr(log.warnings[1], "undo.jsonl:8:") != NULL);
    }
    CHECK_EQ_INT(label_log_live(&log, "alice", "x"), -1);
    CHECK_EQ_INT(live_label(&log, "bob", "x"), LABEL_A);
    CHECK_EQ_INT(live_label(&log, "alice", "y"), LABEL_TIE);
    CHECK(log.j[0].undone && log.j[1].undone && !log.j[2].undone);
    CHECK(!label_log_is_live(&log, 0) && label_log_is_live(&log, 2));
    CHECK_EQ_INT(log.j[2].line, 3);

    /* after the first undo only: line 1 is live again */
    LabelLog l2;
    label_log_init(&l2);
    const char *p2 = tmp_path("undo2.jsonl");
    write_file(p2, J("alice", "x", "A") J("alice", "x", "B") U("alice", "x"));
    CHECK(label_log_read(&l2, p2, 0, err) == 0);
    CHECK_EQ_INT(live_label(&l2, "alice", "x"), LABEL_A);
    CHECK_EQ_INT(label_log_live(&l2, "alice", "x"), 0);
    label_log_free(&l2);
    label_log_free(&log);
    label_log_free(&log); /* twice is harmless */
}

static void test_log_torn(void) {
    char err[ERRBUF_LEN];
    LabelLog log;
    /* a crash while writing line 3: it has no newline and is cut short */
    const char *p = tmp_path("torn.jsonl");
    write_file(p, J("alice", "1", "A") J("alice", "2", "B")
                  "{\"prompt\":\"p\",\"chosen\":\"x\",\"rej");
    label_log_init(&log);
    CHECK(label_log_read(&log, p, 0, err) == 0);
    CHECK_EQ_INT(log.n, 2);
    CHECK_EQ_INT(log.n_torn, 1);
    CHECK_EQ_INT(log.n_warnings, 1);
    if (log.n_warnings) CHECK(strstr(log.warnings[0], "torn.jsonl:3: torn last line"));
    CHECK_EQ_INT(live_label(&log, "alice", "2"), LABEL_B);
    label_log_free(&log);

    /* a complete record that only lost its newline is kept */
    write_file(p, J("alice", "1", "A") "{\"undo\":\"1\",\"annotator\":\"alice\"}");
    label_log_init(&log);
    CHECK(label_log_read(&log, p, 0, err) == 0);
    CHECK_EQ_INT(log.n_torn, 0);
    CHECK_EQ_INT(log.n_undo, 1);
    CHECK_EQ_INT(label_log_live(&log, "alice", "1"), -1);
    label_log_free(&log);

    /* the tool seals a torn line with '\n' before appending: the fragment becomes a bad
     * middle line, reported and skipped; the records after it count */
    write_file(p, J("alice", "1", "A") "{\"prompt\":\"p\",\"cho\n" J("alice", "2", "tie")
                      "not json at all\n" "{\"label\":\"A\",\"id\":\"3\"}\n"
                      "{\"annotator\":\"alice\",\"label\":\"maybe\",\"id\":\"3\"}\n"
                      "{\"annotator\":\"alice\",\"label\":\"A\",\"id\":\"3\"}\n"
                      "{\"prompt\":\"x\",\"chosen\":\"y\",\"rejected\":\"z\"}\n"
                      "{\"annotator\":\"alice\",\"label\":\"up\",\"id\":\"t\","
                      "\"prompt\":\"x\",\"response\":\"\xff\"}\n" J("alice", "4", "B"));
    label_log_init(&log);
    CHECK(label_log_read(&log, p, 0, err) == 0);
    CHECK_EQ_INT(log.n, 3);
    CHECK_EQ_INT(log.n_torn, 0);
    CHECK_EQ_INT(log.n_warnings, 7);
    const char *want[7] = {":2: not valid JSON", ":4: not valid JSON", ":5: missing field \"annotator\"",
                           ":6: unknown label \"maybe\"", ":7: a \"A\" judgment needs field \"prompt\"",
                           ":8: not a rlhf-label record", ":9: not valid UTF-8"};
    for (int i = 0; i < 7 && i < log.n_warnings; i++)
        CHECK_MSG(strstr(log.warnings[i], want[i]) != NULL, "warning %d = \"%s\"", i,
                  log.warnings[i]);
    CHECK_EQ_INT(live_label(&log, "alice", "4"), LABEL_B);
    CHECK_EQ_INT(live_label(&log, "alice", "2"), LABEL_TIE);
    label_log_free(&log);

    /* missing file: empty log when allowed (first run), else an error */
    label_log_init(&log);
    CHECK(label_log_read(&log, tmp_path("none.jsonl"), 1, err) == 0);
    CHECK_EQ_INT(log.n, 0);
    CHECK_EQ_INT(log.n_files, 1);
    CHECK(label_log_read(&log, tmp_path("none.jsonl"), 0, err) == -1);
    CHECK(strstr(err, "none.jsonl") != NULL);
    label_log_free(&log);
}

/* which items a restarted run still has to show, per annotator */
static void test_resume_set(void) {
    char err[ERRBUF_LEN];
    const char *c = tmp_path("rcand.jsonl");
    write_file(c, "{\"prompt\":\"p\",\"a\":\"x\",\"b\":\"y\",\"id\":\"i1\"}\n"
                  "{\"prompt\":\"p\",\"a\":\"x\",\"b\":\"y\",\"id\":\"i2\"}\n"
                  "{\"prompt\":\"p\",\"a\":\"x\",\"b\":\"y\",\"id\":\"i3\"}\n"
                  "{\"prompt\":\"p\",\"a\":\"x\",\"b\":\"y\",\"id\":\"i4\"}\n");
    const char *p = tmp_path("rprefs.jsonl");
    write_file(p, J("alice", "i1", "A") T("alice", "i2", "skip") J("alice", "i3", "B")
                      U("alice", "i3") J("bob", "i4", "A") J("alice", "gone", "A")
                      "{\"prompt\":\"p\",\"chosen\":\"x\",\"rejected\"");
    LabelItems it;
    LabelLog log;
    label_log_init(&log);
    CHECK(label_items_load(&it, c, LABEL_MODE_PAIR, err) == 0);
    CHECK(label_log_read(&log, p, 1, err) == 0);
    int done_alice[4], done_bob[4];
    for (int i = 0; i < it.n && i < 4; i++) {
        done_alice[i] = label_log_live(&log, "alice", it.items[i].id) >= 0;
        done_bob[i] = label_log_live(&log, "bob", it.items[i].id) >= 0;
    }
    /* alice: i1 judged, i2 skipped (recorded: not shown again), i3 undone, i4 never */
    CHECK(done_alice[0] && done_alice[1] && !done_alice[2] && !done_alice[3]);
    CHECK(!done_bob[0] && !done_bob[1] && !done_bob[2] && done_bob[3]);
    CHECK_EQ_INT(live_label(&log, "alice", "i2"), LABEL_SKIP);
    CHECK_EQ_INT(log.n_torn, 1);
    label_items_free(&it);
    label_log_free(&log);
}

/* the records the tool writes, read back by the same reader */
static void test_records(void) {
    char err[ERRBUF_LEN];
    LabelItem it = {.id = "k1", .prompt = "Q?", .a = "resp A", .b = "resp \"B\"\n2",
                    .category = "math", .line = 1};
    LabelLog log;
    label_log_init(&log);
    char t[32];
    label_time_iso8601(t, (time_t)1700000000);
    CHECK(strcmp(t, "2023-11-14T22:13:20Z") == 0); /* date -u -d @1700000000 */

    const LabelKind kinds[4] = {LABEL_A, LABEL_B, LABEL_TIE, LABEL_SKIP};
    for (int q = 0; q < 4; q++) {
        char *line = label_record_judgment(&it, LABEL_MODE_PAIR, kinds[q], "ann", t);
        size_t n = strlen(line);
        CHECK(n > 0 && line[n - 1] == '\n' && memchr(line, '\n', n - 1) == NULL);
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        CHECK(o != NULL);
        if (o) {
            const char *ch = json_string_value(json_object_get(o, "chosen"));
            const char *rj = json_string_value(json_object_get(o, "rejected"));
            if (kinds[q] == LABEL_A) CHECK(ch && rj && !strcmp(ch, "resp A") && !strcmp(rj, it.b));
            if (kinds[q] == LABEL_B) CHECK(ch && rj && !strcmp(ch, it.b) && !strcmp(rj, "resp A"));
            if (kinds[q] == LABEL_TIE || kinds[q] == LABEL_SKIP) {
                /* not training pairs: no chosen/rejected, the two responses as a/b */
                CHECK(!json_object_get(o, "chosen") && !json_object_get(o, "rejected"));
                CHECK(!strcmp(json_string_value(json_object_get(o, "a")), "resp A"));
            }
            CHECK(!strcmp(json_string_value(json_object_get(o, "label")), label_kind_name(kinds[q])));
            CHECK(!strcmp(json_string_value(json_object_get(o, "prompt")), "Q?"));
            CHECK(!strcmp(json_string_value(json_object_get(o, "annotator")), "ann"));
            CHECK(!strcmp(json_string_value(json_object_get(o, "time")), t));
            CHECK(!strcmp(json_string_value(json_object_get(o, "id")), "k1"));
            CHECK(!strcmp(json_string_value(json_object_get(o, "category")), "math"));
            json_decref(o);
        }
        CHECK(label_log_apply(&log, line, n - 1, 0, 0, err) == 0);
        CHECK_EQ_INT(live_label(&log, "ann", "k1"), kinds[q]);
        free(line);
    }
    char *u = label_record_undo("k1", "ann", t);
    CHECK(label_log_apply(&log, u, strlen(u) - 1, 0, 0, err) == 0);
    CHECK_EQ_INT(live_label(&log, "ann", "k1"), LABEL_TIE);
    free(u);

    /* thumbs, no category: the field is left out */
    LabelItem th = {.id = "t1", .prompt = "P", .a = "R", .b = NULL, .category = NULL};
    char *line = label_record_judgment(&th, LABEL_MODE_THUMBS, LABEL_DOWN, "ann", t);
    json_t *o = json_loads(line, 0, NULL);
    CHECK(o && !json_object_get(o, "category") && !json_object_get(o, "chosen"));
    CHECK(o && !strcmp(json_string_value(json_object_get(o, "response")), "R"));
    CHECK(o && !strcmp(json_string_value(json_object_get(o, "label")), "down"));
    json_decref(o);
    CHECK(label_log_apply(&log, line, strlen(line) - 1, 0, 0, err) == 0);
    free(line);
    label_log_free(&log);
}

/* records without "id" (other tools may leave it out) get the content id the candidates
 * line had, so they match the tool's records of the same item */
static void test_derived_id(void) {
    char err[ERRBUF_LEN], want[LABEL_HASH_ID_LEN], want_t[LABEL_HASH_ID_LEN];
    label_item_hash_id(want, LABEL_MODE_PAIR, "What is 2+2?", "4", "5");
    label_item_hash_id(want_t, LABEL_MODE_THUMBS, "Say hi", "Hi there!", NULL);
    LabelLog log;
    label_log_init(&log);
    const char *recs[4] = {
        "{\"prompt\":\"What is 2+2?\",\"chosen\":\"4\",\"rejected\":\"5\",\"annotator\":\"j\",\"label\":\"A\"}",
        "{\"prompt\":\"What is 2+2?\",\"chosen\":\"5\",\"rejected\":\"4\",\"annotator\":\"k\",\"label\":\"B\"}",
        "{\"prompt\":\"What is 2+2?\",\"a\":\"4\",\"b\":\"5\",\"annotator\":\"l\",\"label\":\"tie\"}",
        "{\"prompt\":\"Say hi\",\"response\":\"Hi there!\",\"annotator\":\"j\",\"label\":\"down\"}"};
    for (int i = 0; i < 4; i++) {
        CHECK(label_log_apply(&log, recs[i], strlen(recs[i]), 0, i + 1, err) == 0);
        if (log.n == i + 1) CHECK_MSG(!strcmp(log.j[i].id, i < 3 ? want : want_t), "record %d id %s", i, log.j[i].id);
    }
    CHECK_EQ_INT(live_label(&log, "k", want), LABEL_B);
    const char *no_texts = "{\"prompt\":\"p\",\"annotator\":\"j\",\"label\":\"tie\"}";
    CHECK(label_log_apply(&log, no_texts, strlen(no_texts), 0, 5, err) == -1);
    CHECK(strstr(err, "missing field \"id\"") != NULL);
    label_log_free(&log);
}

static void test_append(void) {
    char err[ERRBUF_LEN];
    const char *p = tmp_path("append.jsonl");
    unlink(p);
    int fd = open(p, O_WRONLY | O_APPEND | O_CREAT, 0644);
    CHECK(fd >= 0);
    CHECK(label_append_line(fd, "{\"a\":1}\n", p, err) == 0);
    CHECK(label_append_line(fd, "{\"b\":2}\n", p, err) == 0);
    close(fd);
    size_t n;
    char *s = file_read_all(p, &n, err);
    CHECK(s && strcmp(s, "{\"a\":1}\n{\"b\":2}\n") == 0);
    free(s);
    /* a descriptor that cannot be written: an error naming the file, never a crash */
    fd = open(p, O_RDONLY);
    CHECK(label_append_line(fd, "x\n", p, err) == -1);
    CHECK(strstr(err, "append.jsonl: write failed") != NULL);
    close(fd);
}

// ----------------------------------------------------------------------------
// kappa against hand-computed textbook tables

/* Cohen's kappa, the 2x2 example used in most textbooks (e.g. Wikipedia "Cohen's kappa"):
 * 50 proposals, rater 1 (rows) and rater 2 (cols), categories Yes, No:
 *          Yes  No
 *   Yes     20   5      row totals 25, 25
 *   No      10  15      col totals 30, 20
 * p_o = (20 + 15) / 50 = 0.70
 * p_e = (25/50)(30/50) + (25/50)(20/50) = 0.30 + 0.20 = 0.50
 * kappa = (0.70 - 0.50) / (1 - 0.50) = 0.40 */
static void test_cohen(void) {
    double po, pe;
    const long t2[4] = {20, 5, 10, 15};
    CHECK_NEAR(label_cohen_kappa(t2, 2, &po, &pe), 0.40, 1e-12, 0);
    CHECK_NEAR(po, 0.70, 1e-12, 0);
    CHECK_NEAR(pe, 0.50, 1e-12, 0);

    /* 3 categories (A, B, tie), N = 80:
     *          A   B  tie   row
     *   A     25   5   2    32
     *   B      3  30   1    34
     *   tie    2   2  10    14
     *   col   30  37  13
     * p_o = (25 + 30 + 10) / 80 = 65/80 = 0.8125
     * p_e = (32*30 + 34*37 + 14*13) / 80^2 = (960 + 1258 + 182) / 6400 = 2400/6400 = 0.375
     * kappa = (0.8125 - 0.375) / (1 - 0.375) = 0.4375 / 0.625 = 0.70 */
    const long t3[9] = {25, 5, 2, 3, 30, 1, 2, 2, 10};
    CHECK_NEAR(label_cohen_kappa(t3, 3, &po, &pe), 0.70, 1e-12, 0);
    CHECK_NEAR(po, 0.8125, 1e-12, 0);
    CHECK_NEAR(pe, 0.375, 1e-12, 0);

    /* perfect agreement over two categories: kappa = 1; agreement exactly at chance
     * (independent marginals 10,10 x 10,10 with 5 in each cell): kappa = 0 */
    const long perfect[4] = {7, 0, 0, 3};
    CHECK_NEAR(label_cohen_kappa(perfect, 2, NULL, NULL), 1.0, 1e-12, 0);
    const long chance[4] = {5, 5, 5, 5};
    CHECK_NEAR(label_cohen_kappa(chance, 2, NULL, NULL), 0.0, 1e-12, 0);
    /* complete disagreement, 10 and 10: p_o = 0, p_e = 0.5 -> kappa = -1 */
    const long opposite[4] = {0, 10, 10, 0};
    CHECK_NEAR(label_cohen_kappa(opposite, 2, NULL, NULL), -1.0, 1e-12, 0);
    /* undefined: both raters only ever used one category (p_e = 1), or no items */
    const long one[4] = {9, 0, 0, 0};
    CHECK(isnan(label_cohen_kappa(one, 2, NULL, NULL)));
    const long none[4] = {0, 0, 0, 0};
    CHECK(isnan(label_cohen_kappa(none, 2, NULL, NULL)));
}

/* Fleiss' kappa, the worked example of Fleiss (1971) as reproduced in Wikipedia
 * ("Fleiss' kappa"): N = 10 subjects, n = 14 raters, k = 5 categories.
 *   row  n_i1..n_i5          sum_j n_ij^2   P_i = (sum - 14) / (14*13 = 182)
 *    1   0  0  0  0 14           196          182/182
 *    2   0  2  6  4  2            60           46/182
 *    3   0  0  3  5  6            70           56/182
 *    4   0  3  9  2  0            94           80/182
 *    5   2  2  8  1  1            74           60/182
 *    6   7  7  0  0  0            98           84/182
 *    7   3  2  6  3  0            58           44/182
 *    8   2  5  3  2  2            46           32/182
 *    9   6  5  2  1  0            66           52/182
 *   10   0  2  2  3  7            66           52/182
 *   column totals 20 28 39 21 32 (= 140 = 10 * 14)
 * P   = (182+46+56+80+60+84+44+32+52+52) / (10 * 182) = 688/1820 = 172/455
 * P_e = (20^2 + 28^2 + 39^2 + 21^2 + 32^2) / 140^2 = (400+784+1521+441+1024)/19600
 *     = 4170/19600 = 417/1960
 * over the common denominator 25480: P = 9632/25480, P_e = 5421/25480, so
 * kappa = (9632 - 5421) / (25480 - 5421) = 4211/20059 = 0.20993... (Wikipedia: 0.210) */
static void test_fleiss(void) {
    const long t[50] = {0, 0, 0, 0, 14, 0, 2, 6, 4, 2, 0, 0, 3, 5, 6, 0, 3, 9, 2, 0,
                        2, 2, 8, 1, 1,  7, 7, 0, 0, 0, 3, 2, 6, 3, 0, 2, 5, 3, 2, 2,
                        6, 5, 2, 1, 0,  0, 2, 2, 3, 7};
    double pb, pe;
    CHECK_NEAR(label_fleiss_kappa(t, 10, 5, &pb, &pe), 4211.0 / 20059.0, 1e-12, 0);
    CHECK_NEAR(pb, 688.0 / 1820.0, 1e-12, 0);
    CHECK_NEAR(pe, 4170.0 / 19600.0, 1e-12, 0);

    /* two raters: Fleiss' kappa is Scott's pi. Items (A,A), (A,B), (B,B), (B,B):
     * P_i = 1, 0, 1, 1 -> P = 3/4; p_A = 3/8, p_B = 5/8 -> P_e = 9/64 + 25/64 = 34/64
     * kappa = (48/64 - 34/64) / (30/64) = 14/30 */
    const long two[8] = {2, 0, 1, 1, 0, 2, 0, 2};
    CHECK_NEAR(label_fleiss_kappa(two, 4, 2, NULL, NULL), 14.0 / 30.0, 1e-12, 0);
    /* rows with different numbers of raters are not allowed: NaN */
    const long ragged[4] = {2, 0, 1, 2};
    CHECK(isnan(label_fleiss_kappa(ragged, 2, 2, NULL, NULL)));
    /* one rater per item: NaN; everyone always picks the same category: P_e = 1, NaN */
    const long single[4] = {1, 0, 0, 1};
    CHECK(isnan(label_fleiss_kappa(single, 2, 2, NULL, NULL)));
    const long same[4] = {3, 0, 3, 0};
    CHECK(isnan(label_fleiss_kappa(same, 2, 2, NULL, NULL)));
}

// ----------------------------------------------------------------------------
// statistics of a log, every number derived by hand

/* Six items, three annotators, two files (statistics read several files):
 *            item: 1    2    3    4    5    6
 *   ann1           A    A    B    tie  A    B
 *   ann2           A    B    B    tie  A    skip    (item 2: A first, re-judged B)
 *   ann3           A    A    B    A    -    -       (item 5: B, then undone)
 * Per annotator: ann1 A3 B2 tie1; ann2 A2 B2 tie1 skip1; ann3 A3 B1, 1 undone.
 * Skips carry no opinion: item 6 has one rater, item 5 two, items 1-4 three.
 *
 * ann1/ann2, items 1-5: A/A, A/B, B/B, tie/tie, A/A -> agree 4 of 5 = 80%
 *   marginals ann1 A3 B1 tie1, ann2 A2 B2 tie1: p_e = (3*2 + 1*2 + 1*1)/25 = 9/25
 *   kappa = (4/5 - 9/25) / (1 - 9/25) = (11/25) / (16/25) = 11/16 = 0.6875
 * ann1/ann3, items 1-4: A/A, A/A, B/B, tie/A -> 3 of 4 = 75%
 *   ann1 A2 B1 tie1, ann3 A3 B1: p_e = (2*3 + 1*1 + 0)/16 = 7/16
 *   kappa = (12/16 - 7/16) / (9/16) = 5/9
 * ann2/ann3, items 1-4: A/A, B/A, B/B, tie/A -> 2 of 4 = 50%
 *   ann2 A1 B2 tie1, ann3 A3 B1: p_e = (1*3 + 2*1 + 0)/16 = 5/16
 *   kappa = (8/16 - 5/16) / (11/16) = 3/11
 * pooled: 9 agreements in 13 comparisons.
 * Fleiss, 3 raters, items 1-4: rows (A,B,tie) = (3,0,0) (2,1,0) (0,3,0) (1,0,2)
 *   P_i = (9-3)/6, (5-3)/6, (9-3)/6, (5-3)/6 = 1, 1/3, 1, 1/3 -> P = 2/3
 *   totals A6 B4 tie2 of 12 -> P_e = 1/4 + 1/9 + 1/36 = 14/36 = 7/18
 *   kappa = (2/3 - 7/18) / (1 - 7/18) = (5/18) / (11/18) = 5/11
 * Fleiss, 2 raters, item 5: (A, A) -> P_e = 1: undefined (NaN). */
static void test_stats(void) {
    char err[ERRBUF_LEN];
    const char *f1 = tmp_path("s1.jsonl"), *f2 = tmp_path("s2.jsonl");
    write_file(f1, J("ann1", "1", "A") J("ann1", "2", "A") J("ann1", "3", "B")
                       T("ann1", "4", "tie") J("ann1", "5", "A") J("ann1", "6", "B")
                       J("ann2", "1", "A") J("ann2", "2", "A") J("ann2", "3", "B")
                       T("ann2", "4", "tie") J("ann2", "5", "A") T("ann2", "6", "skip")
                       J("ann2", "2", "B"));
    write_file(f2, J("ann3", "1", "A") J("ann3", "2", "A") J("ann3", "5", "B")
                       J("ann3", "3", "B") U("ann3", "5") J("ann3", "4", "A"));
    LabelLog log;
    label_log_init(&log);
    CHECK(label_log_read(&log, f1, 0, err) == 0);
    CHECK(label_log_read(&log, f2, 0, err) == 0);
    CHECK_EQ_INT(log.n_warnings, 0);
    CHECK_EQ_INT(log.n_files, 2);
    LabelStats st;
    label_stats_compute(&st, &log);
    CHECK_EQ_INT(st.n_annotators, 3);
    if (st.n_annotators == 3) {
        CHECK(!strcmp(st.annotators[0], "ann1") && !strcmp(st.annotators[2], "ann3"));
        const long want[3][LABEL_COUNT] = {{3, 2, 1, 0, 0, 0}, {2, 2, 1, 1, 0, 0}, {3, 1, 0, 0, 0, 0}};
        for (int a = 0; a < 3; a++)
            for (int k = 0; k < LABEL_COUNT; k++) CHECK_EQ_INT(st.counts[a][k], want[a][k]);
        CHECK_EQ_INT(st.undone[0], 0);
        CHECK_EQ_INT(st.undone[2], 1);
    }
    CHECK_EQ_INT(st.n_superseded, 1); /* ann2's first judgment of item 2 */
    CHECK_EQ_INT(st.n_items, 6);
    CHECK_EQ_INT(st.n_items_single, 1);
    CHECK_EQ_INT(st.n_pairs, 3);
    if (st.n_pairs == 3) {
        const long common[3] = {5, 4, 4}, agree[3] = {4, 3, 2};
        const double kappa[3] = {11.0 / 16.0, 5.0 / 9.0, 3.0 / 11.0};
        const int pa[3] = {0, 0, 1}, pb[3] = {1, 2, 2};
        for (int p = 0; p < 3; p++) {
            CHECK_EQ_INT(st.pairs[p].a, pa[p]);
            CHECK_EQ_INT(st.pairs[p].b, pb[p]);
            CHECK_EQ_INT(st.pairs[p].n_common, common[p]);
            CHECK_EQ_INT(st.pairs[p].n_agree, agree[p]);
            CHECK_NEAR(st.pairs[p].kappa, kappa[p], 1e-12, 0);
        }
    }
    CHECK_EQ_INT(st.pooled_common, 13);
    CHECK_EQ_INT(st.pooled_agree, 9);
    CHECK_EQ_INT(st.n_groups, 2);
    if (st.n_groups == 2) {
        CHECK_EQ_INT(st.groups[0].n_raters, 2);
        CHECK_EQ_INT(st.groups[0].n_items, 1);
        CHECK(isnan(st.groups[0].kappa));
        CHECK_EQ_INT(st.groups[1].n_raters, 3);
        CHECK_EQ_INT(st.groups[1].n_items, 4);
        CHECK_NEAR(st.groups[1].kappa, 5.0 / 11.0, 1e-12, 0);
    }
    /* the printed report carries the same numbers */
    const char *rp = tmp_path("report.txt");
    FILE *f = fopen(rp, "w");
    label_stats_print(f, &st);
    fclose(f);
    char *rep = file_read_all(rp, NULL, err);
    CHECK(rep && strstr(rep, "ann1 / ann2") && strstr(rep, "80.0%") && strstr(rep, "0.688"));
    CHECK(rep && strstr(rep, "0.455") && strstr(rep, "undefined") && strstr(rep, "69.2%"));
    free(rep);

    /* export: the live A/B judgments only, undo and re-judging honoured:
     * ann1 A3+B2, ann2 A2+B2, ann3 A3+B1 = 13 pairs */
    const char *ep = tmp_path("export.jsonl");
    f = fopen(ep, "w");
    CHECK_EQ_INT(label_export(f, &log, 0), 13);
    fclose(f);
    char *ex = file_read_all(ep, NULL, err);
    int lines = 0;
    for (char *q = ex; q && *q; q++) lines += *q == '\n';
    CHECK_EQ_INT(lines, 13);
    CHECK(ex && !strstr(ex, "\"label\"") && !strstr(ex, "undo") && strstr(ex, "\"chosen\""));
    free(ex);
    f = fopen(ep, "w");
    CHECK_EQ_INT(label_export(f, &log, 1), 0); /* no thumbs judgments here */
    fclose(f);
    label_stats_free(&st);
    label_log_free(&log);

    /* thumbs: two annotators, up/down, exported as KTO lines with a boolean label */
    const char *f3 = tmp_path("s3.jsonl");
    write_file(f3, "{\"prompt\":\"p\",\"response\":\"r\",\"annotator\":\"x\",\"label\":\"up\",\"id\":\"t1\"}\n"
                   "{\"prompt\":\"p\",\"response\":\"r\",\"annotator\":\"y\",\"label\":\"down\",\"id\":\"t1\"}\n"
                   "{\"prompt\":\"p\",\"response\":\"s\",\"annotator\":\"x\",\"label\":\"down\",\"id\":\"t2\"}\n"
                   "{\"prompt\":\"p\",\"response\":\"s\",\"annotator\":\"y\",\"label\":\"down\",\"id\":\"t2\"}\n");
    label_log_init(&log);
    CHECK(label_log_read(&log, f3, 0, err) == 0);
    label_stats_compute(&st, &log);
    /* x: up, down; y: down, down -> agree 1 of 2; p_e = (1/2)(0) + (1/2)(1) = 1/2;
     * kappa = (1/2 - 1/2) / (1/2) = 0 */
    CHECK_EQ_INT(st.n_pairs, 1);
    if (st.n_pairs == 1) {
        CHECK_EQ_INT(st.pairs[0].n_agree, 1);
        CHECK_NEAR(st.pairs[0].kappa, 0.0, 1e-12, 0);
    }
    label_stats_free(&st);
    f = fopen(ep, "w");
    CHECK_EQ_INT(label_export(f, &log, 1), 4);
    fclose(f);
    ex = file_read_all(ep, NULL, err);
    CHECK(ex && strstr(ex, "\"completion\":\"r\",\"label\":true") &&
          strstr(ex, "\"label\":false"));
    free(ex);
    label_log_free(&log);
    label_stats_free(&st); /* twice is harmless */
}

// ----------------------------------------------------------------------------
// word-wrapping

static void wrap_expect(const char *text, int width, int n, const char *const *lines) {
    LabelLines l = {0};
    label_wrap(&l, text, width);
    CHECK_MSG(l.n == n, "wrap(\"%s\", %d): %d lines, expected %d", text, width, l.n, n);
    for (int i = 0; i < l.n && i < n; i++)
        CHECK_MSG(strcmp(l.line[i], lines[i]) == 0, "wrap(\"%s\", %d) line %d = \"%s\", "
                                                    "expected \"%s\"",
                  text, width, i, l.line[i], lines[i]);
    label_lines_free(&l);
}

static void test_wrap(void) {
    wrap_expect("hello world foo", 11, 2, (const char *[]){"hello world", "foo"});
    wrap_expect("hello world foo", 5, 3, (const char *[]){"hello", "world", "foo"});
    wrap_expect("abcdefghij", 4, 3, (const char *[]){"abcd", "efgh", "ij"});
    wrap_expect("a\n\nb", 10, 3, (const char *[]){"a", "", "b"});
    wrap_expect("", 10, 1, (const char *[]){""});
    wrap_expect("end\n", 10, 1, (const char *[]){"end"});
    wrap_expect("  indented\tx", 20, 1, (const char *[]){"  indented    x"});
    wrap_expect("CRLF\r\ntext", 10, 2, (const char *[]){"CRLF", "text"});
    /* ESC and other controls are shown as U+FFFD, never sent to the terminal */
    wrap_expect("x\x1b[2Jy", 20, 1, (const char *[]){"x\xef\xbf\xbd[2Jy"});
    wrap_expect("bad\xff", 20, 1, (const char *[]){"bad\xef\xbf\xbd"});
    /* wide characters take two columns */
    LabelLines l = {0};
    label_wrap(&l, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 5); /* 日本語 */
    CHECK_EQ_INT(l.n, 2);
    if (l.n == 2) {
        CHECK_EQ_INT(l.width[0], 4);
        CHECK_EQ_INT(l.width[1], 2);
    }
    label_lines_free(&l);
    CHECK_EQ_INT(label_cp_width('a'), 1);
    CHECK_EQ_INT(label_cp_width(0x0301), 0);
    CHECK_EQ_INT(label_cp_width(0x4E2D), 2);

    /* random bytes: every line fits, and no control byte survives */
    Rng r;
    rng_init(&r, 1234);
    char text[300];
    for (int trial = 0; trial < 500; trial++) {
        int n = (int)rng_below(&r, sizeof(text) - 1);
        for (int i = 0; i < n; i++) {
            uint64_t pick = rng_below(&r, 10);
            text[i] = pick < 6 ? (char)('a' + rng_below(&r, 26)) : pick < 8 ? ' '
                      : pick < 9 ? (char)rng_below(&r, 32) : (char)(128 + rng_below(&r, 128));
            if (text[i] == 0) text[i] = 'z';
        }
        text[n] = 0;
        int width = 1 + (int)rng_below(&r, 30);
        LabelLines w = {0};
        label_wrap(&w, text, width);
        int ok = w.n >= 1;
        for (int i = 0; i < w.n; i++) {
            ok &= w.width[i] <= width;
            ok &= utf8_valid(w.line[i], strlen(w.line[i]), NULL);
            for (const char *q = w.line[i]; *q; q++) ok &= (unsigned char)*q >= 0x20 && *q != 0x7f;
        }
        CHECK_MSG(ok, "trial %d width %d", trial, width);
        label_lines_free(&w);
    }
}

// ----------------------------------------------------------------------------
// rankings

#define RK(ann, id, ranks) \
    "{\"prompt\":\"p\",\"responses\":[\"x\",\"y\",\"z\"],\"ranks\":" ranks \
    ",\"annotator\":\"" ann "\",\"time\":\"t\",\"label\":\"rank\",\"id\":\"" id "\"}\n"

static void test_rank_items(void) {
    char err[ERRBUF_LEN];
    const char *p = tmp_path("rank_cand.jsonl");
    write_file(p, "{\"prompt\":\"p\",\"responses\":[\"x\",\"y\",\"z\"]}\n"
                  "{\"prompt\":\"q\",\"responses\":[\"1\",\"2\",\"3\",\"4\"],\"id\":7,"
                  "\"category\":\"c\"}\n");
    LabelItems it;
    CHECK(label_items_load(&it, p, LABEL_MODE_RANK, err) == 0);
    CHECK_EQ_INT(it.n, 2);
    if (it.n == 2) {
        /* independently: FNV-1a 64 over b"R", then len (8 bytes LE) + bytes of p, x, y, z */
        CHECK(!strcmp(it.items[0].id, "h502ec9a9162f90aa"));
        CHECK_EQ_INT(it.items[0].n_resp, 3);
        CHECK(!strcmp(it.items[1].id, "7") && it.items[1].n_resp == 4);
        CHECK(!strcmp(it.items[1].resp[3], "4") && !strcmp(it.items[1].category, "c"));
        CHECK(it.items[0].a == NULL && it.items[0].b == NULL);
    }
    label_items_free(&it);
    struct {
        const char *line, *want;
        LabelMode mode;
    } bad[] = {
        {"{\"prompt\":\"p\",\"responses\":[\"x\",\"y\"]}", "2 responses; 3 to 9", LABEL_MODE_RANK},
        {"{\"prompt\":\"p\",\"responses\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\"]}",
         "10 responses", LABEL_MODE_RANK},
        {"{\"prompt\":\"p\",\"responses\":[\"x\",2,\"z\"]}", "responses[1] must be a string",
         LABEL_MODE_RANK},
        {"{\"prompt\":\"p\",\"responses\":\"x\"}", "must be an array", LABEL_MODE_RANK},
        {"{\"prompt\":\"p\",\"a\":\"x\",\"b\":\"y\"}", "use --mode pair", LABEL_MODE_RANK},
        {"{\"prompt\":\"p\",\"response\":\"x\"}", "use --mode thumbs", LABEL_MODE_RANK},
        {"{\"prompt\":\"p\",\"responses\":[\"x\",\"y\",\"z\"]}", "use --mode rank", LABEL_MODE_PAIR},
        {"{\"prompt\":\"p\",\"responses\":[\"x\",\"y\",\"z\"]}", "use --mode rank", LABEL_MODE_THUMBS},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[512];
        snprintf(text, sizeof text, "\n%s\n", bad[i].line);
        write_file(p, text);
        err[0] = 0;
        CHECK(label_items_load(&it, p, bad[i].mode, err) == -1);
        CHECK_MSG(strstr(err, "rank_cand.jsonl:2:") && strstr(err, bad[i].want), "case %zu: %s", i,
                  err);
    }
}

static void test_rank_log(void) {
    char err[ERRBUF_LEN];
    const char *p = tmp_path("rank_log.jsonl");
    /* a ranking, a re-ranking, an undo (the first is live again), bad records */
    write_file(p, RK("al", "r1", "[1,2,3]") RK("al", "r1", "[3,2,1]") U("al", "r1")
                  RK("al", "r2", "[1,4,2]")   /* 4: place 4 of 3 */
                  RK("al", "r3", "[1,2]")     /* 5: 2 places for 3 responses */
                  "{\"prompt\":\"p\",\"responses\":[\"x\",\"y\",\"z\"],\"annotator\":\"al\","
                  "\"label\":\"rank\",\"id\":\"r4\"}\n" /* 6: no ranks */
                  RK("al", "r5", "[1,\"2\",3]"));     /* 7: a string */
    LabelLog log;
    label_log_init(&log);
    CHECK(label_log_read(&log, p, 0, err) == 0);
    CHECK_EQ_INT(log.n, 2);
    CHECK_EQ_INT(log.n_warnings, 4);
    for (int w = 0; w < log.n_warnings && w < 4; w++) {
        char want[64];
        snprintf(want, sizeof want, "rank_log.jsonl:%d:", 4 + w);
        CHECK_MSG(strstr(log.warnings[w], want) != NULL, "%s", log.warnings[w]);
    }
    int i = label_log_live(&log, "al", "r1");
    CHECK_EQ_INT(i, 0);
    if (i == 0) {
        CHECK_EQ_INT(log.j[0].label, LABEL_RANK);
        CHECK_EQ_INT(log.j[0].n_ranks, 3);
        CHECK(log.j[0].ranks[0] == 1 && log.j[0].ranks[2] == 3);
    }
    label_log_free(&log);

    /* the tool's records read back; without "id" the content id is the item's */
    const char *c = tmp_path("rank_c2.jsonl");
    write_file(c, "{\"prompt\":\"p\",\"responses\":[\"x\",\"y\",\"z\"],\"category\":\"k\"}\n");
    LabelItems it;
    CHECK(label_items_load(&it, c, LABEL_MODE_RANK, err) == 0);
    int ranks[3] = {2, 1, 2};
    char *rec = label_record_rank(&it.items[0], ranks, "bo", "T");
    char *skip = label_record_judgment(&it.items[0], LABEL_MODE_RANK, LABEL_SKIP, "cy", "T");
    CHECK(strstr(rec, "\"ranks\":[2,1,2]") && strstr(rec, "\"label\":\"rank\"") &&
          strstr(rec, "\"category\":\"k\""));
    CHECK(strstr(skip, "\"responses\":[\"x\",\"y\",\"z\"]") && strstr(skip, "\"skip\""));
    label_log_init(&log);
    CHECK(label_log_apply(&log, rec, strlen(rec) - 1, 0, 1, err) == 0);
    CHECK(label_log_apply(&log, skip, strlen(skip) - 1, 0, 2, err) == 0);
    /* drop the id: derived from prompt + responses, equal to the item's content id */
    const char *noid = "{\"prompt\":\"p\",\"responses\":[\"x\",\"y\",\"z\"],\"ranks\":[1,1,1],"
                       "\"annotator\":\"dd\",\"label\":\"rank\"}";
    CHECK(label_log_apply(&log, noid, strlen(noid), 0, 3, err) == 0);
    CHECK_EQ_INT(label_log_live(&log, "dd", it.items[0].id), 2);
    CHECK_EQ_INT(live_label(&log, "cy", it.items[0].id), LABEL_SKIP);
    free(rec);
    free(skip);
    label_log_free(&log);
    label_items_free(&it);
}

static void test_kendall(void) {
    /* hand-computed: n_0 = 6 pairs of 4 items */
    int a[4] = {1, 2, 3, 4}, rev[4] = {4, 3, 2, 1}, sw[4] = {2, 1, 3, 4};
    CHECK_NEAR(label_kendall_tau_b(a, a, 4), 1.0, 1e-12, 0);
    CHECK_NEAR(label_kendall_tau_b(a, rev, 4), -1.0, 1e-12, 0);
    CHECK_NEAR(label_kendall_tau_b(a, sw, 4), 4.0 / 6.0, 1e-12, 0); /* 5 concordant, 1 not */
    /* ties: x = (1,1,2,3), y = (1,2,2,3): n_1 = n_2 = 1; pairs 01 and 12 count for
     * neither; 02, 03, 13, 23 concordant: tau_b = 4 / sqrt(5 * 5) = 0.8 */
    int x[4] = {1, 1, 2, 3}, y[4] = {1, 2, 2, 3};
    CHECK_NEAR(label_kendall_tau_b(x, y, 4), 0.8, 1e-12, 0);
    /* x = (1,1,2), y = (1,2,3): n_0 = 3, n_1 = 1, n_2 = 0; 02, 12 concordant:
     * tau_b = 2 / sqrt(2 * 3) = 0.8164966 */
    int x3[3] = {1, 1, 2}, y3[3] = {1, 2, 3};
    CHECK_NEAR(label_kendall_tau_b(x3, y3, 3), 0.8164966, 1e-7, 0);
    int all[3] = {1, 1, 1};
    CHECK(isnan(label_kendall_tau_b(all, y3, 3)));
    CHECK(isnan(label_kendall_tau_b(a, a, 1)));
}

/* Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the worked example
 * of 4 coders x 12 units with missing values (C.: nominal 0.743, ordinal 0.815, interval
 * 0.849 as printed there; a separate Python implementation of the same formulas gives
 * 0.7434211, 0.8153875, 0.8491071). Rows are units, columns coders, 0 = missing. */
static void test_krippendorff(void) {
    const int v[12 * 4] = {1, 1, 0, 1, 2, 2, 3, 2, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 1, 2, 3, 4,
                           4, 4, 4, 4, 1, 1, 2, 1, 2, 2, 2, 2, 0, 5, 5, 5, 0, 0, 1, 1, 0, 3, 0, 0};
    CHECK_NEAR(label_krippendorff_alpha(v, 12, 4, LABEL_ALPHA_NOMINAL), 0.7434211, 1e-7, 0);
    CHECK_NEAR(label_krippendorff_alpha(v, 12, 4, LABEL_ALPHA_ORDINAL), 0.8153875, 1e-7, 0);
    CHECK_NEAR(label_krippendorff_alpha(v, 12, 4, LABEL_ALPHA_INTERVAL), 0.8491071, 1e-7, 0);
    /* perfect agreement with some variation: 1; a single value everywhere: undefined */
    const int same[3 * 2] = {1, 1, 2, 2, 3, 3}, flat[2 * 2] = {2, 2, 2, 2};
    CHECK_NEAR(label_krippendorff_alpha(same, 3, 2, LABEL_ALPHA_ORDINAL), 1.0, 1e-12, 0);
    CHECK(isnan(label_krippendorff_alpha(flat, 2, 2, LABEL_ALPHA_ORDINAL)));
    /* two coders, reversed orders of 3: o = {1-3: 2, 2-2: 2}, n_1 = n_3 = 2, n_2 = 2;
     * ordinal d2(1,3) = (2 + 2 + 2 - 2)^2 = 16, d2(1,2) = d2(2,3) = 4; D_o-sum = 2*2*16 = 64,
     * D_e-sum = 2*(4*16 + 4*4 + 4*4) = 192: alpha = 1 - 5 * 64 / 192 = -2/3 */
    const int rev[3 * 2] = {1, 3, 2, 2, 3, 1};
    CHECK_NEAR(label_krippendorff_alpha(rev, 3, 2, LABEL_ALPHA_ORDINAL), -2.0 / 3.0, 1e-12, 0);
}

static void test_rank_stats_export(void) {
    char err[ERRBUF_LEN];
    const char *p = tmp_path("rank_stats.jsonl");
    /* r1: same order (tau 1); r2: reversed (-1); r3: one annotator; r4: bo ties all
     * (undefined); plus an A/B judgment that must not mix with the rankings */
    write_file(p, RK("al", "r1", "[1,2,3]") RK("bo", "r1", "[1,2,3]")
                  RK("al", "r2", "[1,2,3]") RK("bo", "r2", "[3,2,1]")
                  RK("al", "r3", "[1,1,2]")
                  RK("al", "r4", "[2,1,3]") RK("bo", "r4", "[1,1,1]")
                  J("al", "pair1", "A") J("bo", "pair1", "A"));
    LabelLog log;
    label_log_init(&log);
    CHECK(label_log_read(&log, p, 0, err) == 0);
    LabelStats st;
    label_stats_compute(&st, &log);
    CHECK_EQ_INT(st.n_rank_items, 4);
    CHECK_EQ_INT(st.n_rank_pairs, 1);
    if (st.n_rank_pairs == 1) {
        CHECK_EQ_INT(st.rank_pairs[0].n_common, 3);
        CHECK_EQ_INT(st.rank_pairs[0].n_defined, 2);
        CHECK_NEAR(st.rank_pairs[0].tau_mean, 0.0, 1e-12, 0);
    }
    CHECK(!isnan(st.rank_alpha) && st.rank_alpha < 1.0);
    CHECK_EQ_INT(st.n_items, 1); /* the pair item only */
    CHECK_EQ_INT(st.pooled_common, 1);
    CHECK_EQ_INT(st.counts[0][LABEL_RANK], 4);
    label_stats_free(&st);

    /* export: r3 (1,1,2) gives 2 pairs of weight 1/3; every ranking of K = 3 is 1/3 */
    const char *out = tmp_path("rank_export.jsonl");
    FILE *f = fopen(out, "w");
    long n = label_export(f, &log, 0);
    fclose(f);
    CHECK_EQ_INT(n, (3 + 3 + 2 + 3) + (3 + 3 + 0) + 2); /* al r1..r4; bo r1, r2, r4 (all tied); A/B */
    size_t len;
    char *text = file_read_all(out, &len, err);
    CHECK(text && strstr(text, "{\"prompt\":\"p\",\"chosen\":\"x\",\"rejected\":\"z\","
                               "\"annotator\":\"al\",\"id\":\"r3\",\"weight\":0.33333333333333331,"
                               "\"group\":\"al/r3\"}"));
    free(text);
    f = fopen(out, "w");
    CHECK_EQ_INT(label_export_rankings(f, &log), 7);
    fclose(f);
    text = file_read_all(out, &len, err);
    CHECK(text && strstr(text, "{\"prompt\":\"p\",\"responses\":[\"x\",\"y\",\"z\"],\"ranks\":"
                               "[3,2,1],\"annotator\":\"bo\",\"id\":\"r2\"}\n"));
    free(text);
    label_log_free(&log);
}

int main(void) {
    const char *root = getenv("RLHF_TEST_TMP");
    snprintf(g_dir, sizeof(g_dir), "%s/test_label.XXXXXX", root && *root ? root : "/tmp");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "test_label: mkdtemp %s: %s\n", g_dir, strerror(errno));
        return 1;
    }
    TEST_RUN(test_kinds);
    TEST_RUN(test_hash_id);
    TEST_RUN(test_items_load);
    TEST_RUN(test_log_undo);
    TEST_RUN(test_log_torn);
    TEST_RUN(test_resume_set);
    TEST_RUN(test_records);
    TEST_RUN(test_derived_id);
    TEST_RUN(test_append);
    TEST_RUN(test_cohen);
    TEST_RUN(test_fleiss);
    TEST_RUN(test_stats);
    TEST_RUN(test_wrap);
    TEST_RUN(test_rank_items);
    TEST_RUN(test_rank_log);
    TEST_RUN(test_kendall);
    TEST_RUN(test_krippendorff);
    TEST_RUN(test_rank_stats_export);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "test_label: could not remove %s\n", g_dir);
    return TEST_EXIT();
}
