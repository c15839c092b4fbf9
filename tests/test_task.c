/*
 * tests/test_task.c — the bundled task generator (common/task.c): world, prompt parse
 * round trip, response shapes, generated data scored by the gold judge (ideal near the
 * top, each flaw lower on its criterion, per category), determinism, stream
 * independence, the analytic ceiling against the empirical agreement and against an
 * independent recomputation from the written file, and every JSONL line parsing with
 * jansson.
 */
#include <jansson.h>
#include <string.h>

#include "judge.h"
#include "task.h"
#include "test.h"
#include "util.h"

static void test_world(void) {
    TaskWorld a, b, c;
    task_world_init(&a, 1234);
    task_world_init(&b, 1234);
    task_world_init(&c, 99);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    int differ = 0;
    for (int i = 0; i < TASK_N_COUNTRY; i++)
        differ += strcmp(a.country[i], c.country[i]) != 0;
    CHECK(differ > TASK_N_COUNTRY / 2);
    /* all 24 names distinct (any case), capitalised, letters only */
    const char *all[2 * TASK_N_COUNTRY];
    for (int i = 0; i < TASK_N_COUNTRY; i++) {
        all[2 * i] = a.country[i];
        all[2 * i + 1] = a.capital[i];
    }
    for (int i = 0; i < 2 * TASK_N_COUNTRY; i++) {
        CHECK(all[i][0] >= 'A' && all[i][0] <= 'Z');
        CHECK(strlen(all[i]) >= 2);
        for (int j = i + 1; j < 2 * TASK_N_COUNTRY; j++)
            CHECK_MSG(strcasecmp(all[i], all[j]) != 0, "%s twice", all[i]);
    }
}

static int query_eq(const TaskQuery *a, const TaskQuery *b) {
    return a->cat == b->cat && a->kind == b->kind && a->x == b->x && a->y == b->y &&
           a->entity == b->entity && strcmp(a->word, b->word) == 0;
}

/* Every template of every kind parses back to the query that rendered it. */
static void test_parse_roundtrip(void) {
    TaskWorld w;
    task_world_init(&w, 1234);
    char question[TASK_TEXT_LEN], prompt[TASK_TEXT_LEN];
    int bad = 0, n = 0;
    for (int red = 0; red < 2; red++)
        for (int c = 0; c < TASK_N_CAT; c++) {
            if (red && c != TASK_CAT_UNSAFE) continue;
            for (int i = 0; i < 1500; i++) {
                Rng r;
                rng_init_keyed(&r, 5, (uint64_t)c, (uint64_t)i);
                TaskQuery q, p;
                task_sample_query(&w, (TaskCategory)c, red, &r, &q);
                int nt = task_n_templates(q.kind, red);
                CHECK(nt > 0);
                for (int t = 0; t < nt; t++) {
                    task_question_render(question, sizeof question, &w, &q, t, red);
                    task_prompt_format(prompt, sizeof prompt, question);
                    int rc = task_parse_prompt(&w, prompt, &p);
                    int rc2 = task_parse_prompt(&w, question, &p) | rc; /* frame optional */
                    n++;
                    if (rc2 != 0 || !query_eq(&q, &p)) {
                        if (bad++ < 5)
                            fprintf(stderr,
                                    "parse mismatch: '%s' -> cat %d kind %d x %d y %d e %d\n",
                                    question, p.cat, p.kind, p.x, p.y, p.entity);
                    }
                }
            }
        }
    CHECK_EQ_INT(bad, 0);
    CHECK(n > 10000);
}

static void test_parse_unknown(void) {
    TaskWorld w;
    task_world_init(&w, 1234);
    TaskQuery q;
    const char *unknown[] = {"",
                             "User: \nAssistant:",
                             "What is the meaning of life?",
                             "User: Tell me about the weather.\nAssistant:",
                             "\xff\xfe\x01 binary junk",
                             "What color is the car?",
                             "What is the capital of France?"};
    for (int i = 0; i < (int)(sizeof unknown / sizeof *unknown); i++) {
        CHECK_MSG(task_parse_prompt(&w, unknown[i], &q) == -1, "'%s' parsed", unknown[i]);
        CHECK(q.cat == TASK_CAT_UNKNOWN);
    }
    /* a long prompt does not crash and is cut, not overrun */
    size_t n = 100000;
    char *big = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = "abc +-= 12 "[i % 11];
    big[n] = 0;
    task_parse_prompt(&w, big, &q);
    free(big);
    /* user-written variants the judge should still understand */
    CHECK(task_parse_prompt(&w, "what is 3 plus 4", &q) == 0 && q.kind == TASK_KIND_ADD &&
          q.x == 3 && q.y == 4);
    CHECK(task_parse_prompt(&w, "Subtract 2 from 9.", &q) == 0 && q.kind == TASK_KIND_SUB &&
          q.x == 9 && q.y == 2);
    CHECK(task_parse_prompt(&w, "Please repeat the word kettle 4 times.", &q) == 0 &&
          q.kind == TASK_KIND_REPEAT && q.x == 4 && !strcmp(q.word, "kettle") && q.entity == -1);
    CHECK(task_parse_prompt(&w, "How do I steal my sister's bike?", &q) == 0 &&
          q.cat == TASK_CAT_UNSAFE && q.entity == -1);
    CHECK(task_parse_prompt(&w, "Hi, how are you?", &q) == 0 && q.cat == TASK_CAT_CHAT &&
          q.entity == 1);
}

static int words_of(const char *s) {
    TaskWords *tw = xmalloc(sizeof *tw);
    task_words_split(tw, s);
    int n = tw->n_total;
    free(tw);
    return n;
}

/* Response shape: leading space, one line, short (the tiny model's budget). */
static void test_response_shapes(void) {
    TaskWorld w;
    task_world_init(&w, 7);
    char question[TASK_TEXT_LEN], prompt[TASK_TEXT_LEN], resp[TASK_TEXT_LEN];
    int max_words = 0, max_chars = 0;
    for (int c = 0; c < TASK_N_CAT; c++)
        for (int i = 0; i < 400; i++) {
            Rng r;
            rng_init_keyed(&r, 11, (uint64_t)c, (uint64_t)i);
            TaskQuery q;
            task_sample_query(&w, (TaskCategory)c, 0, &r, &q);
            task_question_render(question, sizeof question, &w, &q, i, 0);
            task_prompt_format(prompt, sizeof prompt, question);
            CHECK(!strncmp(prompt, "User: ", 6));
            CHECK(strlen(prompt) > 12 && !strcmp(prompt + strlen(prompt) - 11, "\nAssistant:"));
            for (int k = 0; k < TASK_N_QUALITY; k++) {
                int len = task_response_render(resp, sizeof resp, &w, &q, (TaskQuality)k, &r);
                if (!task_quality_applies((TaskQuality)k, (TaskCategory)c)) {
                    CHECK(len == -1 && resp[0] == 0);
                    continue;
                }
                CHECK(len > 1 && resp[0] == ' ' && resp[1] != ' ');
                CHECK(!strchr(resp, '\n'));
                int nw = words_of(resp), nc = (int)(strlen(prompt) + strlen(resp));
                if (nw > max_words) max_words = nw;
                if (nc > max_chars) max_chars = nc;
            }
        }
    CHECK_MSG(max_words <= 25, "longest response %d words", max_words);
    CHECK_MSG(max_chars <= 180, "longest prompt+response %d chars", max_chars);
    fprintf(stderr, "  longest response %d words; longest prompt+response %d chars\n", max_words,
            max_chars);
}

// ---- generated files --------------------------------------------------------------

static json_t *parse_line(const char *line, size_t len, const char *what, int lineno) {
    json_error_t e;
    json_t *j = json_loadb(line, len, 0, &e);
    CHECK_MSG(j && json_is_object(j), "%s:%d: %s", what, lineno, e.text);
    return j;
}

static const char *str_field(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Call fn on every line of a JSONL buffer (each must parse); returns the line count. */
static int each_line(const TaskBuf *b, const char *what, void (*fn)(json_t *, void *), void *ctx) {
    int n = 0;
    const char *p = b->data, *end = b->data + b->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        CHECK_MSG(nl != NULL, "%s: last line has no newline", what);
        if (!nl) break;
        json_t *j = parse_line(p, (size_t)(nl - p), what, n + 1);
        if (j) {
            if (fn) fn(j, ctx);
            json_decref(j);
        }
        n++;
        p = nl + 1;
    }
    return n;
}

typedef struct {
    TaskWorld w;
    double sum[TASK_N_CAT][TASK_N_QUALITY][5]; /* total, help, harm, polite, concise */
    int n[TASK_N_CAT][TASK_N_QUALITY];
    int bad;
} ScoreAcc;

static void score_sft(json_t *o, void *ctx) {
    ScoreAcc *a = ctx;
    const char *prompt = str_field(o, "prompt"), *resp = str_field(o, "response"),
               *cat = str_field(o, "category"), *qual = str_field(o, "quality");
    if (!prompt || !resp || !cat || !qual) {
        a->bad++;
        return;
    }
    int q = -1;
    for (int k = 0; k < TASK_N_QUALITY; k++)
        if (!strcmp(qual, task_quality_name((TaskQuality)k))) q = k;
    TaskCategory c = task_category_from_name(cat);
    JudgeScores s;
    char err[ERRBUF_LEN];
    if (q < 0 || c == TASK_CAT_UNKNOWN || judge_gold(&a->w, prompt, resp, &s, err) != 0 ||
        s.category != c) {
        a->bad++;
        return;
    }
    double v[5] = {s.total, s.helpfulness, s.harmlessness, s.politeness, s.concision};
    for (int m = 0; m < 5; m++)
        a->sum[c][q][m] += v[m];
    a->n[c][q]++;
}

/* The gold judge on the generated demonstrations: ideal near the top, each flawed kind
 * lower overall and lower on the criterion it breaks, in every category. */
static void test_generated_scores(void) {
    TaskSizes s = {8000, 0, 0, 0, 0, 0, TASK_CONTRAST_PCT, 0};
    TaskOutput out;
    char err[ERRBUF_LEN];
    CHECK(task_generate(&out, 321, &s, err) == 0);
    static ScoreAcc a;
    memset(&a, 0, sizeof a);
    task_world_init(&a.w, 321);
    CHECK_EQ_INT(each_line(&out.sft, "sft", score_sft, &a), 8000);
    CHECK_EQ_INT(a.bad, 0);
    enum { TOT, HELP, HARM, POL, CON };
    /* which criterion each flaw breaks */
    const int crit[TASK_N_QUALITY] = {TOT, HELP, POL, CON, HARM, HARM, POL, -1};
    int ideal_share = 0, total = 0;
    for (int c = 0; c < TASK_N_CAT; c++) {
        int ni = a.n[c][TASK_Q_IDEAL];
        CHECK(ni > 50);
        if (!ni) continue;
        double ideal[5];
        for (int m = 0; m < 5; m++)
            ideal[m] = a.sum[c][TASK_Q_IDEAL][m] / ni;
        CHECK_MSG(ideal[TOT] >= 0.99, "%s ideal mean %.3f", task_category_name(c), ideal[TOT]);
        for (int q = 1; q < TASK_N_QUALITY; q++) {
            int n = a.n[c][q];
            total += n;
            if (!task_quality_applies((TaskQuality)q, (TaskCategory)c)) {
                CHECK_EQ_INT(n, 0);
                continue;
            }
            CHECK_MSG(n > 10, "%s/%s only %d", task_category_name(c),
                      task_quality_name((TaskQuality)q), n);
            if (!n) continue;
            double mean = a.sum[c][q][TOT] / n;
            CHECK_MSG(mean < ideal[TOT] - 0.03, "%s/%s mean %.3f vs ideal %.3f",
                      task_category_name(c), task_quality_name((TaskQuality)q), mean, ideal[TOT]);
            int m = crit[q];
            if (q == TASK_Q_PARTIAL) m = c == TASK_CAT_UNSAFE ? HARM : HELP;
            double cm = a.sum[c][q][m] / n;
            CHECK_MSG(cm < ideal[m] - 0.2, "%s/%s criterion %d mean %.3f vs ideal %.3f",
                      task_category_name(c), task_quality_name((TaskQuality)q), m, cm, ideal[m]);
            fprintf(stderr, "  %-8s %-13s n %4d total %.3f\n", task_category_name(c),
                    task_quality_name((TaskQuality)q), n, mean);
        }
        ideal_share += ni;
        total += ni;
    }
    /* documented mix: about 45% ideal */
    CHECK_NEAR((double)ideal_share / total, 0.45, 0.03, 0);
    task_output_free(&out);
}

typedef struct {
    char **prompts;
    int n;
} PromptList;
static void collect_prompt(json_t *o, void *ctx) {
    PromptList *l = ctx;
    const char *p = str_field(o, "prompt");
    l->prompts = xrealloc(l->prompts, (size_t)(l->n + 1) * sizeof *l->prompts);
    l->prompts[l->n++] = xstrdup(p ? p : "");
}
static void prompt_list_free(PromptList *l) {
    for (int i = 0; i < l->n; i++)
        free(l->prompts[i]);
    free(l->prompts);
}

static void test_determinism(void) {
    TaskSizes s = {500, 400, 100, 200, 50, 30, TASK_CONTRAST_PCT, 60};
    TaskOutput a, b, c, d;
    char err[ERRBUF_LEN];
    CHECK(task_generate(&a, 77, &s, err) == 0);
    CHECK(task_generate(&b, 77, &s, err) == 0);
    CHECK(task_generate(&c, 78, &s, err) == 0);
    TaskSizes s2 = s;
    s2.sft = 900;
    s2.prompts_train = 10;
    CHECK(task_generate(&d, 77, &s2, err) == 0);
#define SAME(x, y) ((x).len == (y).len && memcmp((x).data, (y).data, (x).len) == 0)
    CHECK(SAME(a.corpus, b.corpus) && SAME(a.sft, b.sft) && SAME(a.prefs_train, b.prefs_train) &&
          SAME(a.prefs_eval, b.prefs_eval) && SAME(a.prompts_train, b.prompts_train) &&
          SAME(a.prompts_eval, b.prompts_eval) && SAME(a.prompts_redteam, b.prompts_redteam) &&
          SAME(a.ceiling, b.ceiling) && SAME(a.world, b.world));
    CHECK(!SAME(a.sft, c.sft) && !SAME(a.prefs_eval, c.prefs_eval) && !SAME(a.world, c.world));
    /* one file's size never changes another file: each has its own stream */
    CHECK(SAME(a.prefs_train, d.prefs_train) && SAME(a.prefs_eval, d.prefs_eval) &&
          SAME(a.ceiling, d.ceiling) && SAME(a.prompts_redteam, d.prompts_redteam));
    /* and the first lines of a longer file are the shorter file */
    CHECK(d.sft.len > a.sft.len && memcmp(a.sft.data, d.sft.data, a.sft.len) == 0);
    /* the extra arithmetic pairs follow the mixed pairs, which they leave as they are */
    TaskOutput e;
    TaskSizes s3 = s;
    s3.prefs_arith = 0;
    CHECK(task_generate(&e, 77, &s3, err) == 0);
    CHECK(a.prefs_train.len > e.prefs_train.len &&
          memcmp(a.prefs_train.data, e.prefs_train.data, e.prefs_train.len) == 0);
    TaskWorld w;
    task_world_init(&w, 77);
    TaskBuf tail = {a.prefs_train.data + e.prefs_train.len, a.prefs_train.len - e.prefs_train.len, 0};
    PromptList pl = {0};
    int extra = each_line(&tail, "arith", collect_prompt, &pl), arith = 0;
    for (int i = 0; i < pl.n; i++) {
        TaskQuery q;
        arith += task_parse_prompt(&w, pl.prompts[i], &q) == 0 &&
                 (q.kind == TASK_KIND_ADD || q.kind == TASK_KIND_SUB);
    }
    prompt_list_free(&pl);
    CHECK_EQ_INT(extra, 60);
    CHECK_EQ_INT(arith, 60);
    task_output_free(&e);
#undef SAME
    task_output_free(&a);
    task_output_free(&b);
    task_output_free(&c);
    task_output_free(&d);
    /* bad sizes */
    TaskSizes z;
    task_sizes_default(&z);
    CHECK(z.sft == 6000 && z.prefs_train == 24000 && z.prefs_eval == 600 &&
          z.prompts_train == 1000 && z.prompts_eval == 200 && z.prompts_redteam == 100);
    CHECK(z.prefs_arith == TASK_PREFS_ARITH);
    CHECK(task_sizes_parse(&z, "arith=7", err) == 0 && z.prefs_arith == 7);
    CHECK(task_sizes_parse(&z, "sft=10,prefs_eval=3,redteam=0", err) == 0);
    CHECK(z.sft == 10 && z.prefs_eval == 3 && z.prompts_redteam == 0 && z.prefs_train == 24000);
    CHECK(task_sizes_parse(&z, "sft=-1", err) == -1 && strstr(err, "sft"));
    CHECK(task_sizes_parse(&z, "sft=12x", err) == -1 && strstr(err, "integer"));
    CHECK(task_sizes_parse(&z, "dpo=3", err) == -1 && strstr(err, "unknown name 'dpo'"));
    CHECK(task_sizes_parse(&z, "sft", err) == -1 && strstr(err, "name=N"));
}

typedef struct {
    TaskWorld w;
    double expected, agree;
    int n, bad;
} CeilAcc;

/* the generator's annotators as documented in docs/task.md */
static const Annotator DOC_ANN[] = {{"sim-careful", 0.05, 0.02, 0},
                                    {"sim-average", 0.10, 0.05, 0},
                                    {"sim-hasty", 0.25, 0.10, 0},
                                    {"sim-noisy", 0.05, 0.25, 0}};

static void ceil_line(json_t *o, void *ctx) {
    CeilAcc *a = ctx;
    const char *p = str_field(o, "prompt"), *ch = str_field(o, "chosen"),
               *rj = str_field(o, "rejected"), *an = str_field(o, "annotator");
    JudgeScores sc, sr;
    char err[ERRBUF_LEN];
    const Annotator *ann = NULL;
    for (int k = 0; k < 4 && an; k++)
        if (!strcmp(an, DOC_ANN[k].name)) ann = &DOC_ANN[k];
    if (!p || !ch || !rj || !ann || judge_gold(&a->w, p, ch, &sc, err) ||
        judge_gold(&a->w, p, rj, &sr, err) || sc.total == sr.total) {
        a->bad++;
        return;
    }
    a->agree += sc.total > sr.total;
    a->expected += annotator_agree_prob(ann, sc.total, sr.total);
    a->n++;
}

/* The analytic ceiling: (1) recomputed independently from the written eval file it
 * equals ceiling.json; (2) on a large eval split the empirical agreement of the noisy
 * labels with the gold ordering matches it within a few standard errors. */
static void test_ceiling(void) {
    TaskSizes s = {0, 0, 600, 0, 0, 0, TASK_CONTRAST_PCT, 0};
    TaskOutput out;
    char err[ERRBUF_LEN];
    CHECK(task_generate(&out, 1234, &s, err) == 0);
    static CeilAcc a;
    memset(&a, 0, sizeof a);
    task_world_init(&a.w, 1234);
    CHECK_EQ_INT(each_line(&out.prefs_eval, "prefs_eval", ceil_line, &a), 600);
    CHECK_EQ_INT(a.bad, 0);
    json_error_t je;
    json_t *cj = json_loadb(out.ceiling.data, out.ceiling.len, 0, &je);
    CHECK_MSG(cj != NULL, "ceiling.json: %s", je.text);
    if (cj && a.n) {
        double exp_file = json_number_value(json_object_get(cj, "expected_agreement"));
        double emp_file = json_number_value(json_object_get(cj, "empirical_agreement"));
        CHECK_EQ_INT(json_integer_value(json_object_get(cj, "pairs")), 600);
        CHECK_NEAR(exp_file, a.expected / a.n, 2e-6, 0);
        CHECK_NEAR(emp_file, a.agree / a.n, 2e-6, 0);
        CHECK_NEAR(out.eval_all.expected, a.expected / a.n, 1e-9, 0);
        json_t *pc = json_object_get(cj, "per_category");
        int sum = 0;
        for (int c = 0; c < TASK_N_CAT; c++)
            sum += (int)json_integer_value(
                json_object_get(json_object_get(pc, task_category_name((TaskCategory)c)), "pairs"));
        CHECK_EQ_INT(sum, 600);
        /* noisy annotators: the ceiling is well below 1 and above chance */
        CHECK(exp_file > 0.6 && exp_file < 0.95);
    }
    json_decref(cj);
    task_output_free(&out);

    TaskSizes big = {0, 0, 20000, 0, 0, 0, TASK_CONTRAST_PCT, 0};
    CHECK(task_generate(&out, 4321, &big, err) == 0);
    double e = out.eval_all.expected, m = out.eval_all.empirical;
    double se = sqrt(e * (1 - e) / 20000.0);
    fprintf(stderr, "  20000 eval pairs: expected agreement %.4f, empirical %.4f (se %.4f)\n", e, m,
            se);
    CHECK_NEAR(m, e, 4 * se, 0);
    for (int c = 0; c < TASK_N_CAT; c++) {
        const TaskAgreement *t = &out.eval_cat[c];
        double sc = sqrt(t->expected * (1 - t->expected) / t->pairs);
        CHECK_NEAR(t->empirical, t->expected, 4.5 * sc, 0);
    }
    task_output_free(&out);
}

typedef struct {
    const char *const *keys;
    int n_keys, bad;
} FieldsAcc;

static void check_fields(json_t *o, void *ctx) {
    FieldsAcc *a = ctx;
    for (int k = 0; k < a->n_keys; k++) {
        const char *v = str_field(o, a->keys[k]);
        if (!v) {
            a->bad++;
            continue;
        }
        if (!strcmp(a->keys[k], "prompt") && (strncmp(v, "User: ", 6) || strlen(v) < 12 ||
                                              strcmp(v + strlen(v) - 11, "\nAssistant:")))
            a->bad++;
        if (!strcmp(a->keys[k], "category") && task_category_from_name(v) == TASK_CAT_UNKNOWN)
            a->bad++;
        if ((!strcmp(a->keys[k], "response") || !strcmp(a->keys[k], "chosen") ||
             !strcmp(a->keys[k], "rejected")) &&
            v[0] != ' ')
            a->bad++;
    }
}

/* The acts world.json marks redteam_only occur in red-team prompts and in no other file's
 * prompt; every training act occurs in some training prompt (so none is dead). */
static void check_redteam_acts(const PromptList *red, const PromptList *other, const char *world,
                               size_t world_len) {
    json_error_t je;
    json_t *wj = json_loadb(world, world_len, 0, &je);
    json_t *acts = wj ? json_object_get(wj, "unsafe_acts") : NULL;
    CHECK_MSG(json_array_size(acts) > 0, "world.json unsafe_acts: %s", wj ? "empty" : je.text);
    int n_red = 0;
    for (size_t a = 0; a < json_array_size(acts); a++) {
        json_t *row = json_array_get(acts, a);
        const char *act = str_field(row, "act");
        int red_only = json_is_true(json_object_get(row, "redteam_only"));
        CHECK(act && *act);
        if (!act) continue;
        int in_red = 0, in_other = 0;
        for (int i = 0; i < red->n; i++)
            in_red += strstr(red->prompts[i], act) != NULL;
        for (int i = 0; i < other->n; i++)
            in_other += strstr(other->prompts[i], act) != NULL;
        n_red += red_only;
        if (red_only) {
            CHECK_MSG(in_red > 0 && in_other == 0, "red-team act '%s': %d red-team prompts, %d others",
                      act, in_red, in_other);
        } else {
            CHECK_MSG(in_other > 0, "training act '%s' is in no training prompt", act);
        }
    }
    CHECK_EQ_INT(n_red, 4);
    json_decref(wj);
}

/* Every JSONL line parses with jansson and carries the documented fields; the red-team
 * phrasings never occur in any training or eval file. */
static void test_jsonl_parses(void) {
    TaskSizes s = {1500, 1500, 300, 1000, 200, 100, TASK_CONTRAST_PCT, 100};
    TaskOutput out;
    char err[ERRBUF_LEN];
    CHECK(task_generate(&out, 1234, &s, err) == 0);
    const char *k_sft[] = {"prompt", "response", "category", "quality"};
    const char *k_pref[] = {"prompt",    "chosen",         "rejected",        "category",
                            "annotator", "chosen_quality", "rejected_quality"};
    const char *k_prompt[] = {"prompt", "category"};
    FieldsAcc fs = {k_sft, 4, 0}, fp = {k_pref, 7, 0}, fq = {k_prompt, 2, 0};
    CHECK_EQ_INT(each_line(&out.sft, "sft", check_fields, &fs), 1500);
    CHECK_EQ_INT(each_line(&out.prefs_train, "prefs_train", check_fields, &fp), 1600);
    CHECK_EQ_INT(each_line(&out.prefs_eval, "prefs_eval", check_fields, &fp), 300);
    CHECK_EQ_INT(each_line(&out.prompts_train, "prompts_train", check_fields, &fq), 1000);
    CHECK_EQ_INT(each_line(&out.prompts_eval, "prompts_eval", check_fields, &fq), 200);
    CHECK_EQ_INT(each_line(&out.prompts_redteam, "prompts_redteam", check_fields, &fq), 100);
    CHECK_EQ_INT(fs.bad + fp.bad + fq.bad, 0);
    json_error_t je;
    json_t *wj = json_loadb(out.world.data, out.world.len, 0, &je);
    CHECK_MSG(wj && json_array_size(json_object_get(wj, "countries")) == TASK_N_COUNTRY,
              "world.json: %s", je.text);
    json_decref(wj);

    /* red-team prompts: unsafe, and their phrasing (the prompt minus the act) is in no
     * other file: check that no other prompt equals a red-team prompt and that the
     * red-team template prefixes never start another file's question */
    PromptList red = {0}, other = {0};
    each_line(&out.prompts_redteam, "r", collect_prompt, &red);
    each_line(&out.sft, "s", collect_prompt, &other);
    each_line(&out.prefs_train, "p", collect_prompt, &other);
    each_line(&out.prefs_eval, "p", collect_prompt, &other);
    each_line(&out.prompts_train, "t", collect_prompt, &other);
    each_line(&out.prompts_eval, "e", collect_prompt, &other);
    TaskWorld w;
    task_world_init(&w, 1234);
    int leaks = 0, unsafe = 0;
    for (int i = 0; i < red.n; i++) {
        TaskQuery q;
        unsafe += task_parse_prompt(&w, red.prompts[i], &q) == 0 && q.cat == TASK_CAT_UNSAFE;
        char prefix[24];
        snprintf(prefix, sizeof prefix, "%s", red.prompts[i]); /* "User: " + 17 chars */
        for (int j = 0; j < other.n; j++)
            leaks += strncmp(other.prompts[j], prefix, 23) == 0;
    }
    CHECK_EQ_INT(unsafe, red.n);
    CHECK_EQ_INT(leaks, 0);
    check_redteam_acts(&red, &other, out.world.data, out.world.len);
    prompt_list_free(&red);
    prompt_list_free(&other);
    /* corpus: prompt + response per example */
    CHECK(out.corpus.len > 0 && strstr(out.corpus.data, "User: ") == out.corpus.data);
    task_output_free(&out);
}

/* The held-out prompts keep the task's mix within the fact category (arithmetic is 2 of
 * its 7 kinds; retrying duplicates across kinds once made it 95%), and the RL training
 * prompts avoid them except in chat, whose 15 prompts the held-out file exhausts. */
static void test_heldout_prompts(void) {
    TaskSizes s;
    task_sizes_default(&s);
    s.sft = s.prefs_train = s.prefs_eval = 0;
    TaskOutput out;
    char err[ERRBUF_LEN];
    CHECK(task_generate(&out, 1234, &s, err) == 0);
    PromptList tr = {0}, ev = {0};
    each_line(&out.prompts_train, "t", collect_prompt, &tr);
    each_line(&out.prompts_eval, "e", collect_prompt, &ev);
    TaskWorld w;
    task_world_init(&w, 1234);
    int fact = 0, arith = 0, shared = 0, shared_chat = 0;
    for (int i = 0; i < ev.n; i++) {
        TaskQuery q;
        CHECK(task_parse_prompt(&w, ev.prompts[i], &q) == 0);
        if (q.cat == TASK_CAT_FACT) {
            fact++;
            arith += q.kind == TASK_KIND_ADD || q.kind == TASK_KIND_SUB;
        }
        int in_train = 0;
        for (int j = 0; j < tr.n && !in_train; j++)
            in_train = strcmp(ev.prompts[i], tr.prompts[j]) == 0;
        shared += in_train;
        shared_chat += in_train && q.cat == TASK_CAT_CHAT;
    }
    double frac = fact ? (double)arith / fact : 0;
    fprintf(stderr, "  held-out: %d fact prompts, %.2f arithmetic (2/7 = 0.29); %d in train (%d chat)\n",
            fact, frac, shared, shared_chat);
    CHECK(fact > 50);
    CHECK_NEAR(frac, 2.0 / 7.0, 0.15, 0);
    CHECK_EQ_INT(shared, shared_chat);
    prompt_list_free(&tr);
    prompt_list_free(&ev);
    task_output_free(&out);
}

/* Contrast pairs: for every training prompt (all kinds, all safe categories) a right and
 * a flawed answer in the same style; the right one wins on the gold judge, only
 * helpfulness differs (same politeness and harmlessness: the style gives nothing
 * away), and a right answer in the ideal style scores exactly 1. Unsafe prompts have
 * none. Also checks contrast=PCT reaches the files: ~PCT % of the safe pairs, and
 * contrast=0 writes no contrast pair. */
static int count_pairs(const TaskBuf *b, const char *needle) {
    int n = 0;
    for (const char *p = b->data; p && (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_contrast_pairs(void) {
    TaskSizes s;
    task_sizes_default(&s);
    s.sft = s.prefs_train = s.prefs_eval = s.prompts_eval = s.prompts_redteam = 0;
    TaskOutput out;
    char err[ERRBUF_LEN];
    CHECK(task_generate(&out, 99, &s, err) == 0);
    PromptList pl = {0};
    each_line(&out.prompts_train, "t", collect_prompt, &pl);
    TaskWorld w;
    task_world_init(&w, 99);
    int n_pairs = 0, n_ideal = 0, n_unsafe = 0, by_bad[TASK_N_QUALITY] = {0};
    for (int i = 0; i < pl.n; i++) {
        TaskQuery q;
        CHECK(task_parse_prompt(&w, pl.prompts[i], &q) == 0);
        for (int k = 0; k < 4; k++) {
            Rng r;
            rng_init_keyed(&r, 5, (uint64_t)i, (uint64_t)k);
            char good[TASK_TEXT_LEN], bad[TASK_TEXT_LEN];
            TaskQuality qg, qb;
            int rc = task_contrast_render(good, bad, sizeof good, &w, &q, &qg, &qb, &r);
            if (q.cat == TASK_CAT_UNSAFE) {
                CHECK_EQ_INT(rc, -1);
                n_unsafe++;
                continue;
            }
            CHECK_EQ_INT(rc, 0);
            JudgeScores sg, sb;
            CHECK(judge_gold(&w, pl.prompts[i], good, &sg, err) == 0);
            CHECK(judge_gold(&w, pl.prompts[i], bad, &sb, err) == 0);
            CHECK_MSG(sg.total > sb.total && sg.helpfulness == 1.0 && sb.helpfulness < 1.0 &&
                          sg.politeness == sb.politeness && sg.harmlessness == sb.harmlessness,
                      "contrast pair for '%s': '%s' (%.3f) vs '%s' (%.3f)", pl.prompts[i], good,
                      sg.total, bad, sb.total);
            CHECK(qg == TASK_Q_IDEAL || qg == TASK_Q_TERSE || qg == TASK_Q_RAMBLING);
            CHECK(qb == TASK_Q_WRONG || (qb == TASK_Q_PARTIAL && q.cat != TASK_CAT_CHAT));
            if (qg == TASK_Q_IDEAL) {
                CHECK_MSG(sg.total == 1.0, "ideal '%s' -> '%s' scores %.3f", pl.prompts[i], good,
                          sg.total);
                n_ideal++;
            }
            by_bad[qb]++;
            n_pairs++;
        }
    }
    fprintf(stderr, "  %d contrast pairs (%d ideal style; %d wrong, %d partial), %d unsafe refused\n",
            n_pairs, n_ideal, by_bad[TASK_Q_WRONG], by_bad[TASK_Q_PARTIAL], n_unsafe);
    CHECK(n_pairs > 2000 && n_ideal > 500 && by_bad[TASK_Q_PARTIAL] > 300 && n_unsafe > 0);
    prompt_list_free(&pl);
    task_output_free(&out);

    /* the share in the files */
    task_sizes_default(&s);
    s.sft = s.prompts_train = s.prompts_eval = s.prompts_redteam = s.prefs_eval = 0;
    s.prefs_train = 4000;
    CHECK(task_generate(&out, 99, &s, err) == 0);
    int contrast = count_pairs(&out.prefs_train, "\"pair\":\"contrast\"");
    int unsafe = count_pairs(&out.prefs_train, "\"category\":\"unsafe\"");
    double share = (double)contrast / (4000 - unsafe);
    fprintf(stderr, "  contrast=%d%%: %d of %d safe pairs (%.3f)\n", s.contrast_pct, contrast,
            4000 - unsafe, share);
    CHECK_NEAR(share, s.contrast_pct / 100.0, 0.03, 0);
    task_output_free(&out);
    CHECK(task_sizes_parse(&s, "contrast=0", err) == 0);
    CHECK(task_generate(&out, 99, &s, err) == 0);
    CHECK_EQ_INT(count_pairs(&out.prefs_train, "\"pair\":\"contrast\""), 0);
    CHECK_EQ_INT(count_pairs(&out.prefs_train, "\"pair\":\"random\""), 4000);
    task_output_free(&out);
    CHECK(task_sizes_parse(&s, "contrast=101", err) != 0 && strstr(err, "0..100"));
}

/* Probe pairs (the evaluation of reward models, `rlhf-task probes`): on held-out and
 * red-team prompts the chosen response wins on the gold judge; an unsafe prompt's chosen
 * response refuses and its rejected one does not refuse outright; a safe prompt's pair
 * differs in helpfulness only; the same (seed, line) gives the same pairs; a prompt that
 * is not the task's is an error. */
typedef struct {
    const TaskWorld *w;
    int n, unsafe, bad;
} ProbeAcc;

static void check_probe(json_t *o, void *ctx) {
    ProbeAcc *a = ctx;
    const char *p = str_field(o, "prompt"), *c = str_field(o, "chosen"),
               *r = str_field(o, "rejected"), *k = str_field(o, "kind");
    char err[ERRBUF_LEN];
    JudgeScores sc, sr;
    a->n++;
    if (!p || !c || !r || !k || judge_gold(a->w, p, c, &sc, err) != 0 ||
        judge_gold(a->w, p, r, &sr, err) != 0 || !(sc.total > sr.total)) {
        a->bad++;
        return;
    }
    if (!strcmp(k, "harm")) {
        a->unsafe++;
        a->bad += !sc.refusal || sr.harmlessness >= sc.harmlessness;
    } else {
        a->bad += sc.politeness != sr.politeness || sc.harmlessness != sr.harmlessness ||
                  !(sc.helpfulness > sr.helpfulness);
    }
}

static void test_probe_pairs(void) {
    TaskSizes s;
    task_sizes_default(&s);
    s.sft = s.prefs_train = s.prefs_eval = s.prompts_train = 0;
    TaskOutput out;
    char err[ERRBUF_LEN];
    CHECK(task_generate(&out, 1234, &s, err) == 0);
    TaskWorld w;
    task_world_init(&w, 1234);
    PromptList pl = {0};
    each_line(&out.prompts_eval, "e", collect_prompt, &pl);
    each_line(&out.prompts_redteam, "r", collect_prompt, &pl);
    TaskBuf a = {0}, b = {0};
    for (int i = 0; i < pl.n; i++) {
        CHECK(task_probe_pairs(&a, &w, pl.prompts[i], 3, 1234, (uint64_t)i, err) == 0);
        CHECK(task_probe_pairs(&b, &w, pl.prompts[i], 3, 1234, (uint64_t)i, err) == 0);
    }
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    ProbeAcc acc = {&w, 0, 0, 0};
    CHECK_EQ_INT(each_line(&a, "probes", check_probe, &acc), 3 * pl.n);
    fprintf(stderr, "  %d probe pairs (%d unsafe), %d bad\n", acc.n, acc.unsafe, acc.bad);
    CHECK(acc.unsafe >= 3 * 100);
    CHECK_EQ_INT(acc.bad, 0);
    CHECK(task_probe_pairs(&a, &w, "User: What is the meaning of life?\nAssistant:", 1, 1, 0,
                           err) != 0 &&
          strstr(err, "not a prompt"));
    free(a.data);
    free(b.data);
    prompt_list_free(&pl);
    task_output_free(&out);
}

int main(void) {
    TEST_RUN(test_world);
    TEST_RUN(test_parse_roundtrip);
    TEST_RUN(test_parse_unknown);
    TEST_RUN(test_response_shapes);
    TEST_RUN(test_generated_scores);
    TEST_RUN(test_determinism);
    TEST_RUN(test_ceiling);
    TEST_RUN(test_jsonl_parses);
    TEST_RUN(test_heldout_prompts);
    TEST_RUN(test_contrast_pairs);
    TEST_RUN(test_probe_pairs);
    return TEST_EXIT();
}
