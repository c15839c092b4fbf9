/*
 * tests/test_constitution.c — the constitution file format (common/constitution.h):
 * the shipped configs/constitution.jsonl reads; every kind of bad line is refused with
 * "path:line: what" (the line number counts comments and blank lines); principle
 * sampling is reproducible, uses every principle and depends only on its keys.
 */
#include <stdio.h>
#include <string.h>

#include "constitution.h"
#include "test.h"
#include "util.h"

#define CHECK_HAS(text, substr)                                                           \
    CHECK_MSG(strstr((text), (substr)) != NULL, "'%s' lacks '%s'", (text), (substr))

static const char *GOOD =
    "{\"name\": \"n%d\", \"critique\": \"c\", \"revision\": \"r\", \"comparison\": \"q?\"}";

static void test_shipped(void) {
    Constitution c;
    char err[ERRBUF_LEN] = "";
    int rc = constitution_load(&c, "configs/constitution.jsonl", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) return;
    CHECK_EQ_INT(c.n, 12);
    for (int i = 0; i < c.n; i++)
        CHECK(c.p[i].name[0] && c.p[i].critique[0] && c.p[i].revision[0] && c.p[i].comparison[0]);
    constitution_free(&c);
    constitution_free(&c); /* a freed one frees again as a no-op */
}

static void test_valid(void) {
    const char *text = "# comment\n\n{\"name\": \"a\", \"critique\": \"crit\", \"revision\": \"rev\", "
                       "\"comparison\": \"which?\"}\r\n   \n{\"comparison\": \"q\", \"revision\": "
                       "\"r\", \"critique\": \"c\", \"name\": \"b\"}";
    Constitution c;
    char err[ERRBUF_LEN] = "";
    CHECK_MSG(constitution_parse(&c, text, strlen(text), "x.jsonl", err) == 0, "%s", err);
    CHECK_EQ_INT(c.n, 2);
    CHECK(!strcmp(c.p[0].name, "a") && !strcmp(c.p[0].critique, "crit") &&
          !strcmp(c.p[0].revision, "rev") && !strcmp(c.p[0].comparison, "which?"));
    CHECK_EQ_INT(c.p[0].line, 3);
    CHECK_EQ_INT(c.p[1].line, 5);
    constitution_free(&c);
}

static void test_errors(void) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"", "x.jsonl: no principle"},
        {"# only a comment\n\n", "x.jsonl: no principle"},
        {"{\"name\": \"a\"", "x.jsonl:1: invalid JSON"},
        {"\n[1, 2]", "x.jsonl:2: expected a JSON object"},
        {"{\"name\": \"a\", \"critique\": \"c\", \"revision\": \"r\"}",
         "x.jsonl:1: missing field \"comparison\""},
        {"{\"name\": \"a\", \"critque\": \"c\", \"revision\": \"r\", \"comparison\": \"q\"}",
         "x.jsonl:1: unknown field \"critque\""},
        {"{\"name\": \"\", \"critique\": \"c\", \"revision\": \"r\", \"comparison\": \"q\"}",
         "x.jsonl:1: field \"name\" must be a non-empty string"},
        {"{\"name\": \"a\", \"critique\": 3, \"revision\": \"r\", \"comparison\": \"q\"}",
         "x.jsonl:1: field \"critique\" must be a non-empty string"},
        {"{\"name\": \"a\", \"critique\": \"c\\u0000d\", \"revision\": \"r\", \"comparison\": \"q\"}",
         "x.jsonl:1: "},
        {"{\"name\": \"a\", \"name\": \"b\", \"critique\": \"c\", \"revision\": \"r\", \"comparison\": \"q\"}",
         "x.jsonl:1: invalid JSON"},
        {"{\"name\": \"a\", \"critique\": \"c\", \"revision\": \"r\", \"comparison\": \"q\"}\n#\n"
         "{\"name\": \"a\", \"critique\": \"c\", \"revision\": \"r\", \"comparison\": \"q\"}",
         "x.jsonl:3: duplicate principle name \"a\" (first on line 1)"},
        {"{\"name\": \"a\", \"critique\": \"\xff\", \"revision\": \"r\", \"comparison\": \"q\"}",
         "x.jsonl:1: invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Constitution c;
        char err[ERRBUF_LEN] = "";
        CHECK_MSG(constitution_parse(&c, cases[i].text, strlen(cases[i].text), "x.jsonl", err) == -1,
                  "case %zu accepted", i);
        CHECK_HAS(err, cases[i].want);
        CHECK(c.n == 0 && c.p == NULL);
    }
    Constitution c;
    char err[ERRBUF_LEN] = "";
    CHECK(constitution_load(&c, "/nonexistent/c.jsonl", err) == -1);
    CHECK_HAS(err, "/nonexistent/c.jsonl: cannot open");
}

static void test_pick(void) {
    char text[4096] = "", line[160], err[ERRBUF_LEN] = "";
    for (int i = 0; i < 12; i++) {
        snprintf(line, sizeof line, GOOD, i);
        strcat(text, line);
        strcat(text, "\n");
    }
    Constitution c;
    CHECK(constitution_parse(&c, text, strlen(text), "g", err) == 0);
    int seen[12] = {0}, same = 1, other_seed_differs = 0;
    for (int k = 0; k < 600; k++) {
        int a = constitution_pick(&c, 5, (uint64_t)k, 1);
        CHECK(a >= 0 && a < 12);
        seen[a]++;
        same &= a == constitution_pick(&c, 5, (uint64_t)k, 1);
        other_seed_differs |= a != constitution_pick(&c, 6, (uint64_t)k, 1);
    }
    CHECK(same);
    CHECK(other_seed_differs);
    for (int i = 0; i < 12; i++) CHECK_MSG(seen[i] > 20, "principle %d drawn %d times of 600", i, seen[i]);
    constitution_free(&c);
}

int main(void) {
    TEST_RUN(test_shipped);
    TEST_RUN(test_valid);
    TEST_RUN(test_errors);
    TEST_RUN(test_pick);
    return TEST_EXIT();
}
