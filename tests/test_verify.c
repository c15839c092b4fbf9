/*
 * tests/test_verify.c — verifiable rewards: the verifiers of common/verify.c on
 * hand-written prompts and responses (right, wrong, hedged, extra numbers, number words,
 * unicode), their agreement with the bundled task on every template of the kinds they
 * check (the task is used here only as a source of test cases: verify.c never sees it),
 * the rule judges built on them, the mixed judge's routing table (common/route.c) and
 * the ensemble combination (common/ensemble.c) against hand-computed values.
 */
#include <string.h>

#include "ensemble.h"
#include "judge.h"
#include "route.h"
#include "task.h"
#include "test.h"
#include "util.h"
#include "verify.h"

#define P(q) "User: " q "\nAssistant:"

static double vs(const char *prompt, const char *response) {
    VerifyQuery q;
    verify_parse(prompt, &q);
    return verify_score(&q, response);
}

static void test_arith(void) {
    VerifyQuery q;
    CHECK(verify_parse(P("What is 7 plus 5?"), &q) == VERIFY_ARITH);
    CHECK(q.result == 12 && q.a == 7 && q.b == 5 && q.op == '+');
    const char *p = P("What is 7 plus 5?");
    CHECK(vs(p, " 12") == 1.0);
    CHECK(vs(p, " Sure! 7 plus 5 is 12.") == 1.0);
    CHECK(vs(p, " Twelve.") == 1.0);
    CHECK(vs(p, " 12.0") == 1.0);
    CHECK(vs(p, " 13") == 0.0);
    CHECK(vs(p, " 12 or 13") == 0.0);            /* hedged */
    CHECK(vs(p, " It is 12, not 11.") == 0.0);   /* an extra number */
    CHECK(vs(p, " 12.5") == 0.0);                /* a fraction is never right */
    CHECK(vs(p, " -12") == 0.0);                 /* a negative number is another number */
    CHECK(vs(p, " 12 or 999999999999") == 0.0);  /* a huge number is still another number */
    CHECK(verify_parse(P("What is 2000000000 plus 2000000000?"), &q) == VERIFY_NONE);
    CHECK(vs(p, " I can't say.") == 0.0);        /* no number */
    CHECK(vs(p, "") == 0.0);
    CHECK(vs(p, " It\xE2\x80\x99s 12 \xE2\x9C\x93") == 1.0); /* curly apostrophe, a check mark */
    CHECK(vs(p, " \xEF\xBC\x91\xEF\xBC\x92") == 0.0);        /* full-width digits are no number */
    CHECK(verify_parse(P("What is 19 - 4?"), &q) == VERIFY_ARITH && q.result == 15);
    CHECK(verify_parse(P("What is 19 \xE2\x88\x92 4?"), &q) == VERIFY_ARITH && q.result == 15);
    CHECK(verify_parse(P("Subtract 4 from 19."), &q) == VERIFY_ARITH && q.result == 15 &&
          q.a == 19 && q.b == 4);
    CHECK(vs(P("Subtract 4 from 19."), " 19 - 4 = 15.") == 1.0);
    CHECK(vs(P("Subtract 4 from 19."), " fifteen") == 1.0);
    CHECK(vs(P("Subtract 4 from 19."), " 23") == 0.0);
    CHECK(verify_parse(P("Add 3 and 9."), &q) == VERIFY_ARITH && q.result == 12);
    CHECK(verify_parse("what is twenty-one plus two", &q) == VERIFY_ARITH && q.result == 23);
    CHECK(vs("what is twenty-one plus two", " twenty three") == 1.0);
    CHECK(vs("what is twenty-one plus two", " twenty-three!") == 1.0);
    CHECK(vs("what is twenty-one plus two", " twenty") == 0.0);
}

static void test_count(void) {
    VerifyQuery q;
    const char *p = P("Count from 3 to 6.");
    CHECK(verify_parse(p, &q) == VERIFY_COUNT && q.from == 3 && q.to == 6);
    CHECK(vs(p, " 3, 4, 5, 6.") == 1.0);
    CHECK(vs(p, " Sure! three, four, five, six. Hope that helps!") == 1.0);
    CHECK(vs(p, " 3, 4, 5.") == 0.0);        /* stops early */
    CHECK(vs(p, " 3 4 5 6 7") == 0.0);       /* one too many */
    CHECK(vs(p, " 3, 5, 4, 6") == 0.0);      /* out of order */
    CHECK(vs(p, " 3, 4, 5, 6, done in one go") == 0.0); /* a stray number word */
    CHECK(verify_parse(P("List the numbers from 10 to 14."), &q) == VERIFY_COUNT && q.from == 10);
    CHECK(verify_parse(P("Please count to 3."), &q) == VERIFY_COUNT && q.from == 1 && q.to == 3);
    CHECK(verify_parse(P("Count from 6 to 3."), &q) == VERIFY_NONE); /* downwards: not a rule */
}

static void test_repeat(void) {
    VerifyQuery q;
    const char *p = P("Repeat the word moon twice.");
    CHECK(verify_parse(p, &q) == VERIFY_REPEAT && q.times == 2 && !strcmp(q.word, "moon"));
    CHECK(vs(p, " moon moon") == 1.0);
    CHECK(vs(p, " Sure! Moon, MOON!") == 1.0);
    CHECK(vs(p, " moon") == 0.0);
    CHECK(vs(p, " moon moon moon") == 0.0);
    CHECK(vs(p, " moons moons") == 0.0); /* whole words only */
    CHECK(verify_parse(P("Say the word river three times."), &q) == VERIFY_REPEAT && q.times == 3);
    CHECK(verify_parse(P("Say candle 4 times."), &q) == VERIFY_REPEAT && q.times == 4 &&
          !strcmp(q.word, "candle"));
    CHECK(verify_parse("repeat the word kettle once", &q) == VERIFY_REPEAT && q.times == 1);
}

static void test_not_verifiable(void) {
    VerifyQuery q;
    const char *none[] = {P("What colour is the plum?"), P("Name three colors."), P("Hi there!"),
                          P("How do I rob a bank?"), P("How many legs does a dog have?"),
                          P("Say hello."), "", P("What is 7?")};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        CHECK_MSG(verify_parse(none[i], &q) == VERIFY_NONE, "%s", none[i]);
    CHECK(verify_score(&q, " 7") == 0.0);
    CHECK(verify_parse(NULL, &q) == VERIFY_NONE);
    CHECK(verify_kind_from_name("arith") == VERIFY_ARITH && verify_kind_from_name("x") == -1);
}

/* Every template of every kind of the bundled task: the verifiers recognise exactly the
 * arithmetic, count and repeat prompts, agree with the task on the expected answer, pass
 * correct answers in every style and fail wrong and partial ones. */
static void test_task_agreement(void) {
    TaskWorld w;
    task_world_init(&w, TASK_DEFAULT_SEED);
    Rng r;
    rng_init(&r, 99);
    int seen[VERIFY_N_KIND] = {0};
    for (int cat = 0; cat < TASK_N_CAT; cat++)
        for (int n = 0; n < 300; n++) {
            TaskQuery tq;
            task_sample_query(&w, (TaskCategory)cat, 0, &r, &tq);
            int nt = task_n_templates(tq.kind, 0);
            char qt[TASK_TEXT_LEN], prompt[TASK_TEXT_LEN], resp[TASK_TEXT_LEN];
            task_question_render(qt, sizeof qt, &w, &tq, n % (nt > 0 ? nt : 1), 0);
            task_prompt_format(prompt, sizeof prompt, qt);
            VerifyQuery q;
            VerifyKind k = verify_parse(prompt, &q);
            VerifyKind want = tq.kind == TASK_KIND_ADD || tq.kind == TASK_KIND_SUB ? VERIFY_ARITH
                              : tq.kind == TASK_KIND_COUNT                        ? VERIFY_COUNT
                              : tq.kind == TASK_KIND_REPEAT                       ? VERIFY_REPEAT
                                                                                  : VERIFY_NONE;
            CHECK_MSG(k == want, "%s: kind %s", prompt, verify_kind_name(k));
            seen[k]++;
            if (k == VERIFY_NONE) continue;
            TaskExpect e;
            task_expect(&e, &w, &tq);
            if (k == VERIFY_ARITH) CHECK_MSG(q.result == e.number, "%s", prompt);
            if (k == VERIFY_COUNT) CHECK(q.from == e.seq_from && q.to == e.seq_to);
            if (k == VERIFY_REPEAT) CHECK(q.times == e.number && !strcmp(q.word, e.word));
            const TaskQuality good[] = {TASK_Q_IDEAL, TASK_Q_TERSE, TASK_Q_RAMBLING, TASK_Q_RUDE};
            for (int g = 0; g < 4; g++) {
                task_response_render(resp, sizeof resp, &w, &tq, good[g], &r);
                CHECK_MSG(verify_score(&q, resp) == 1.0, "%s ->%s (%s)", prompt, resp,
                          task_quality_name(good[g]));
            }
            const TaskQuality bad[] = {TASK_Q_WRONG, TASK_Q_PARTIAL, TASK_Q_REFUSE_SAFE};
            for (int b = 0; b < 3; b++) {
                task_response_render(resp, sizeof resp, &w, &tq, bad[b], &r);
                CHECK_MSG(verify_score(&q, resp) == 0.0, "%s ->%s (%s)", prompt, resp,
                          task_quality_name(bad[b]));
            }
        }
    for (int k = 0; k < VERIFY_N_KIND; k++) CHECK_MSG(seen[k] > 20, "kind %d seen %d", k, seen[k]);
}

static double rule(const char *spec, const char *p, const char *resp) {
    Judge j;
    char err[ERRBUF_LEN];
    JudgeScores s;
    int rc = judge_init(&j, spec, TASK_DEFAULT_SEED, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc != 0) return -1;
    CHECK(judge_score(&j, p, resp, &s, err) == 0);
    judge_free(&j);
    return s.total;
}

static void test_rule_judges(void) {
    CHECK(rule("rule:count", P("Count from 3 to 6."), " 3, 4, 5, 6.") == 1.0);
    CHECK(rule("rule:count", P("What is 7 plus 5?"), " 12") == 0.0); /* not its kind */
    CHECK(rule("rule:repeat", P("Say moon twice."), " moon moon") == 1.0);
    CHECK(rule("rule:arith", P("Say moon twice."), " moon moon") == 0.0);
    CHECK(rule("rule:verify", P("Say moon twice."), " moon moon") == 1.0);
    CHECK(rule("rule:verify", P("What is 7 plus 5?"), " 12") == 1.0);
    CHECK(rule("rule:verify", P("What is 7 plus 5?"), " 11") == 0.0);
    CHECK(rule("rule:verify", P("Hi there!"), " Hello!") == 0.0);
    /* prompts outside the task's world: the verifier needs none */
    CHECK(rule("rule:arith", "User: What is 31 plus 40?\nAssistant:", " 71") == 1.0);
}

static void test_route(void) {
    RouteTable t;
    char err[ERRBUF_LEN];
    CHECK(route_parse(&t, "arith:rule:arith, count : rule:count@2-1,repeat:rule:repeat@0.5, *:rm",
                      err) == 0);
    CHECK(t.n == 4 && t.fallback == 3 && t.e[3].is_rm && !t.e[0].is_rm);
    CHECK(!strcmp(t.e[1].spec, "rule:count") && t.e[1].scale == 2.0 && t.e[1].offset == -1.0);
    CHECK(t.e[2].scale == 0.5 && t.e[2].offset == 0.0 && t.e[0].scale == 1.0);
    CHECK(route_uses_rm(&t));
    CHECK(route_pick(&t, P("What is 7 plus 5?")) == 0);
    CHECK(route_pick(&t, P("Count from 3 to 6.")) == 1);
    CHECK(route_pick(&t, P("Repeat the word moon twice.")) == 2);
    CHECK(route_pick(&t, P("What colour is the plum?")) == 3);
    CHECK(route_pick(&t, "") == 3);
    CHECK(route_parse(&t, "count:rule:count, *:gold", err) == 0);
    CHECK(!route_uses_rm(&t) && route_pick(&t, P("What is 7 plus 5?")) == 1); /* no arith entry */
    CHECK(route_parse(&t, "arith:rule:arith", err) != 0 && strstr(err, "'*'"));
    CHECK(route_parse(&t, "math:rule:arith, *:rm", err) != 0 && strstr(err, "math"));
    CHECK(route_parse(&t, "arith:rule:arith, arith:rm, *:rm", err) != 0 && strstr(err, "twice"));
    CHECK(route_parse(&t, "arith:rule:arith@x, *:rm", err) != 0 && strstr(err, "@"));
    CHECK(route_parse(&t, "arith:rule:arith@2*1, *:rm", err) != 0);
    CHECK(route_parse(&t, "arith:bert, *:rm", err) != 0 && strstr(err, "bert"));
    CHECK(route_parse(&t, "arith, *:rm", err) != 0 && strstr(err, "CATEGORY:JUDGE"));
    CHECK(route_parse(&t, "", err) != 0 && strstr(err, "judge.route"));
    CHECK(route_parse(&t, "*:rm,*:rm,*:rm,*:rm,*:rm,*:rm,*:rm,*:rm,*:rm", err) != 0);
}

static void test_ensemble(void) {
    const float v[3] = {1.0f, 2.0f, 3.0f};
    double sd = sqrt(2.0 / 3.0);
    CHECK_NEAR(ensemble_std(v, 3), sd, 1e-12, 0);
    CHECK_NEAR(ensemble_combine(v, 3, ENSEMBLE_MEAN_STD, 1.0), 2.0 - sd, 1e-12, 0);
    CHECK_NEAR(ensemble_combine(v, 3, ENSEMBLE_MEAN_STD, 0.5), 2.0 - 0.5 * sd, 1e-12, 0);
    CHECK(ensemble_combine(v, 3, ENSEMBLE_MEAN_STD, 0.0) == 2.0);
    CHECK(ensemble_combine(v, 3, ENSEMBLE_MIN, 0.0) == 1.0);
    const float w[3] = {0.5f, -1.25f, 0.25f};
    CHECK(ensemble_combine(w, 3, ENSEMBLE_MIN, 1.0) == -1.25);
    CHECK(ensemble_combine(w, 1, ENSEMBLE_MEAN_STD, 3.0) == 0.5); /* K = 1: the score */
    CHECK(ensemble_std(w, 1) == 0.0);
    const float same[2] = {0.7f, 0.7f};
    CHECK(ensemble_combine(same, 2, ENSEMBLE_MEAN_STD, 1.0) == (double)0.7f);
    CHECK(ensemble_rule_from_name("min") == ENSEMBLE_MIN &&
          ensemble_rule_from_name("mean_std") == ENSEMBLE_MEAN_STD &&
          ensemble_rule_from_name("max") == -1);
}

/* Random bytes and random mixes of the words the rules look for: no crash (ASan), scores
 * only 0 or 1, and a recognised prompt's answer is in range. */
static void test_fuzz(void) {
    static const char *const words[] = {"what", "is", "plus", "minus", "+", "-", "count",
                                        "from", "to", "numbers", "repeat", "say", "the", "word",
                                        "twice", "times", "7", "19", "twenty", "one", "-3",
                                        "\xE2\x88\x92", "1.5", "99999999999999", "\xE2\x80\x99"};
    Rng r;
    rng_init(&r, 5);
    char p[600] = "", resp[600];
    for (int it = 0; it < 20000; it++) {
        int n = (int)(rng_uniform_double(&r) * 40), k = 0;
        if (it % 2) {
            for (int i = 0; i < n; i++) {
                const char *w = words[(int)(rng_uniform_double(&r) * 25)];
                k += snprintf(p + k, sizeof p - (size_t)k, "%s ", w);
            }
        } else {
            for (int i = 0; i < n; i++) p[k++] = (char)(1 + rng_uniform_double(&r) * 255);
            p[k] = 0;
        }
        memcpy(resp, p, sizeof resp);
        for (int i = 0; k > 0 && i < 8; i++) resp[(int)(rng_uniform_double(&r) * k)] = '5';
        VerifyQuery q;
        VerifyKind vk = verify_parse(p, &q);
        double sc = verify_score(&q, resp);
        CHECK(sc == 0.0 || sc == 1.0);
        if (vk == VERIFY_COUNT) CHECK(q.from >= 0 && q.to >= q.from && q.to - q.from <= 1000);
        if (vk == VERIFY_REPEAT) CHECK(q.times >= 1 && q.times <= 1000 && q.word[0]);
    }
}

int main(void) {
    TEST_RUN(test_arith);
    TEST_RUN(test_count);
    TEST_RUN(test_repeat);
    TEST_RUN(test_not_verifiable);
    TEST_RUN(test_task_agreement);
    TEST_RUN(test_rule_judges);
    TEST_RUN(test_route);
    TEST_RUN(test_ensemble);
    TEST_RUN(test_fuzz);
    return TEST_EXIT();
}
