/*
 * tests/test_label_req.c — the labelling web page's request decoder (common/label_req.h)
 * and HTML escaping (common/label_page.h): what is accepted, what each refusal says, the
 * places of a rank judgment (label_req_ranks), and that the item templates escape every
 * string of the data.
 */
#include <string.h>

#include "label_page.h"
#include "label_req.h"
#include "test.h"
#include "util.h"

static int decode(LabelReq *r, LabelReqFormat f, const char *body, char *err) {
    err[0] = 0;
    return label_req_decode(r, f, body, strlen(body), err);
}

static void test_format(void) {
    char err[ERRBUF_LEN];
    CHECK_EQ_INT(label_req_format("application/x-www-form-urlencoded", err), LABEL_REQ_FORM);
    CHECK_EQ_INT(label_req_format("Application/JSON; charset=UTF-8", err), LABEL_REQ_JSON);
    CHECK_EQ_INT(label_req_format("application/json;charset=\"utf-8\"", err), LABEL_REQ_JSON);
    CHECK_EQ_INT(label_req_format("application/json; charset=latin1", err), -1);
    CHECK(strstr(err, "charset latin1") != NULL);
    CHECK_EQ_INT(label_req_format("text/plain", err), -1);
    CHECK(strstr(err, "application/x-www-form-urlencoded or application/json") != NULL);
    CHECK_EQ_INT(label_req_format("application/jsonx", err), -1);
    CHECK_EQ_INT(label_req_format(NULL, err), -1);
}

static void test_form(void) {
    LabelReq r;
    char err[ERRBUF_LEN];
    CHECK(decode(&r, LABEL_REQ_FORM, "id=x%22%3E%3Cb%3E&label=A+b&&empty=", err) == 0);
    CHECK_EQ_INT(r.n, 3);
    CHECK(strcmp(label_req_get(&r, "id"), "x\"><b>") == 0);
    CHECK(strcmp(label_req_get(&r, "label"), "A b") == 0);
    CHECK(strcmp(label_req_get(&r, "empty"), "") == 0);
    CHECK(label_req_get(&r, "other") == NULL);
    static const char *const known[] = {"id", "label", NULL};
    CHECK(label_req_only(&r, known, err) == -1 && strstr(err, "unknown field empty"));
    CHECK(label_req_need(&r, "nope", err) == NULL && strstr(err, "missing field nope"));
    label_req_free(&r);
    CHECK(decode(&r, LABEL_REQ_FORM, "", err) == 0 && r.n == 0);
    /* the refusals, each with its reason */
    struct {
        const char *body, *why;
    } bad[] = {
        {"id", "has no '='"},         {"id=%4", "bad % escape"},        {"id=%zz", "bad % escape"},
        {"id=1&id=2", "given twice"}, {"ID=1", "is not accepted"},      {"=1", "is not accepted"},
        {"id=%00", "contains NUL"},   {"id=%ff%fe", "not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_MSG(decode(&r, LABEL_REQ_FORM, bad[i].body, err) == -1, "%s", bad[i].body);
        CHECK_MSG(strstr(err, bad[i].why) != NULL, "%s: %s", bad[i].body, err);
    }
    char many[512] = "";
    for (int i = 0; i <= LABEL_REQ_MAX_FIELDS; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "f%d=1&", i);
    CHECK(decode(&r, LABEL_REQ_FORM, many, err) == -1 && strstr(err, "more than"));
    char *big = xmalloc(LABEL_REQ_MAX_VALUE + 8);
    memcpy(big, "id=", 3);
    memset(big + 3, 'x', LABEL_REQ_MAX_VALUE + 1);
    big[LABEL_REQ_MAX_VALUE + 4] = 0;
    CHECK(decode(&r, LABEL_REQ_FORM, big, err) == -1 && strstr(err, "longer than"));
    free(big);
    CHECK(label_req_decode(&r, LABEL_REQ_FORM, "", LABEL_REQ_MAX_BODY + 1, err) == -1);
}

static void test_json(void) {
    LabelReq r;
    char err[ERRBUF_LEN];
    CHECK(decode(&r, LABEL_REQ_JSON, "{\"id\":\"h\\u00e9<\",\"label\":\"tie\"}", err) == 0);
    CHECK_EQ_INT(r.n, 2);
    CHECK(strcmp(label_req_get(&r, "id"), "h\xc3\xa9<") == 0);
    label_req_free(&r);
    CHECK(decode(&r, LABEL_REQ_JSON, "{}", err) == 0 && r.n == 0);
    struct {
        const char *body, *why;
    } bad[] = {
        {"", "JSON body"},
        {"{\"id\":", "JSON body, position"},
        {"[\"id\"]", "must be an object"},
        {"{\"id\":1}", "must be a string"},
        {"{\"id\":null}", "must be a string"},
        {"{\"id\":\"a\",\"id\":\"b\"}", "JSON body"},
        {"{\"id\":\"a\\u0000b\"}", "JSON body"},
        {"{\"Id\":\"a\"}", "is not accepted"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_MSG(decode(&r, LABEL_REQ_JSON, bad[i].body, err) == -1, "%s", bad[i].body);
        CHECK_MSG(strstr(err, bad[i].why) != NULL, "%s: %s", bad[i].body, err);
    }
}

/* the places r1..rK of a ranking: accepted as the terminal tool writes them, every
 * refusal naming its field */
static void test_ranks(void) {
    LabelReq r;
    char err[ERRBUF_LEN];
    int ranks[LABEL_REQ_RANK_MAX];
    CHECK(decode(&r, LABEL_REQ_FORM, "id=x&label=rank&r1=3&r2=1&r3=1&r4=4", err) == 0);
    CHECK(label_req_has_rank_field(&r));
    CHECK(label_req_ranks(&r, 4, ranks, err) == 0);
    CHECK(ranks[0] == 3 && ranks[1] == 1 && ranks[2] == 1 && ranks[3] == 4);
    CHECK(label_req_ranks(&r, 3, ranks, err) == -1 && strstr(err, "field r4: this item has 3"));
    label_req_free(&r);
    CHECK(decode(&r, LABEL_REQ_JSON, "{\"r1\":\"2\",\"r2\":\"2\",\"r3\":\"1\"}", err) == 0);
    CHECK(label_req_ranks(&r, 3, ranks, err) == 0 && ranks[0] == 2 && ranks[1] == 2 &&
          ranks[2] == 1);
    label_req_free(&r);
    CHECK(decode(&r, LABEL_REQ_FORM, "r1=1&r2=1&r3=1", err) == 0); /* all tied */
    CHECK(label_req_ranks(&r, 3, ranks, err) == 0 && ranks[2] == 1);
    label_req_free(&r);
    CHECK(decode(&r, LABEL_REQ_FORM, "id=x&label=skip&r10x=1&r0=1&r01=1", err) == 0);
    CHECK(!label_req_has_rank_field(&r)); /* not names of places */
    label_req_free(&r);
    struct {
        const char *body;
        int k;
        const char *why;
    } bad[] = {
        {"r1=1&r2=2", 3, "field r3: response 3 has no place"},
        {"r1=1&r2=&r3=2", 3, "field r2: response 2 has no place"},
        {"r1=1&r2=4&r3=2", 3, "field r2: \"4\" is not a place from 1 (best) to 3"},
        {"r1=0&r2=1&r3=2", 3, "field r1: \"0\" is not a place"},
        {"r1=1&r2=+2&r3=3", 3, "field r2: \" 2\" is not a place"},
        {"r1=1&r2=2x&r3=3", 3, "field r2: \"2x\" is not a place"},
        {"r1=1&r2=1&r3=2", 3,
         "field r3: place 2 does not follow from the others: 2 responses "
         "are placed better, so this one is place 3"},
        {"r1=1&r2=3&r3=3", 3,
         "field r2: place 3 does not follow from the others: 1 response is "
         "placed better, so this one is place 2"},
        {"r1=2&r2=2&r3=3", 3, "field r1: place 2 does not follow"},
        {"r1=1&r2=2&r3=3&r12=1", 3, "field r12: this item has 3 responses"},
        {"r1=1", 0, "1 to 9 responses"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_MSG(decode(&r, LABEL_REQ_FORM, bad[i].body, err) == 0, "%s", bad[i].body);
        CHECK_MSG(label_req_ranks(&r, bad[i].k, ranks, err) == -1, "%s", bad[i].body);
        CHECK_MSG(strstr(err, bad[i].why) != NULL, "%s: %s", bad[i].body, err);
        label_req_free(&r);
    }
}

static void test_escape(void) {
    LabelPage p = {0};
    label_page_text(&p, "<script>alert('x')</script> & \"q\"");
    CHECK(strcmp(p.s, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;") == 0);
    label_page_free(&p);
    /* every field of an item, in both modes' templates and the whole page */
    char *resp[] = {"<a1>", "<r2 '\">", "<r3>"};
    LabelItem it = {.id = "i<d", .prompt = "<p1>", .a = "<a1>", .b = "<b1>", .category = "<c>"};
    LabelPageInfo in = {"ann<x>", "pair", 3, 1, 2, "note <n>"};
    for (int m = LABEL_MODE_PAIR; m <= LABEL_MODE_RANK; m++) {
        LabelItem im = it;
        if (m == LABEL_MODE_RANK)
            im = (LabelItem){.id = it.id,
                             .prompt = it.prompt,
                             .category = it.category,
                             .resp = resp,
                             .n_resp = 3};
        label_page_item(&p, (LabelMode)m, &im, &in);
        const char *bad[] = {"<p1>", "<a1>", "<b1>", "<c>", "i<d", "<x>", "<n>", "<r2", "<r3>"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            CHECK_MSG(strstr(p.s, bad[i]) == NULL, "mode %d: %s unescaped", m, bad[i]);
        CHECK(strstr(p.s, "&lt;a1&gt;") != NULL && strstr(p.s, "value=\"i&lt;d\"") != NULL);
        CHECK_EQ_INT(strstr(p.s, "&lt;b1&gt;") != NULL, m == LABEL_MODE_PAIR);
        CHECK(strstr(p.s, "<script src=\"/app.js\" defer></script>") != NULL);
        CHECK(strstr(p.s, " style=") == NULL && strstr(p.s, "onclick") == NULL);
        if (m == LABEL_MODE_RANK) { /* a place select per response, one form for all */
            CHECK(strstr(p.s, "&lt;r2 &#39;&quot;&gt;") != NULL);
            CHECK(strstr(p.s, "<select name=\"r3\" id=\"r3\"><option value=\"\">–</option>"
                              "<option>1</option><option>2</option><option>3</option></select>"));
            CHECK(strstr(p.s, "name=\"r4\"") == NULL);
            CHECK(strstr(p.s, "name=\"label\" value=\"rank\"") != NULL);
            CHECK(strstr(p.s, "value=\"skip\"") != NULL);
        }
        label_page_free(&p);
    }
    CHECK(label_page_mode((LabelMode)7) == NULL);
}

int main(void) {
    TEST_RUN(test_format);
    TEST_RUN(test_form);
    TEST_RUN(test_json);
    TEST_RUN(test_ranks);
    TEST_RUN(test_escape);
    return TEST_EXIT();
}
