/*
 * fuzz/fuzz_dataset.c — libFuzzer target for the JSONL dataset reader, common/dataset.h
 * (the path of a user's training file into build/learner sft/rm/dpo/ppo).
 *
 * Each input is a whole JSONL file, put in a memfd and opened by path, as each DataKind
 * (SFT, PREF, PROMPT) under the skip policy with the default line limit and under the fail
 * policy with a 64-byte line limit; every valid record is then read back with dataset_get.
 * Properties checked besides "no crash, leak, UB or hang":
 *   - a failed open has an error message naming the file;
 *   - the counts add up: every line is exactly one of record, undone record, bad, blank,
 *     non-pair judgment or undo;
 *   - every record has the fields its kind requires, all valid UTF-8, and dataset_get
 *     succeeds for every index the open reported (the file did not change);
 *   - under the fail policy with no bad line, the skip policy finds the same records;
 *   - conversational records (message lists, rendered with a chat template that the
 *     input's size picks among chatml, qwen2.5, qwen3, llama3, plain): an SFT one carries
 *     its whole rendering, prompt + response is exactly that text, and its assistant spans
 *     are ordered, inside the text, the last one starting where the response does; the
 *     other kinds carry no rendering.
 * Seeds: fuzz/corpus/fuzz_dataset/, lines written by rlhf-task gen and rlhf-label (seeds.c
 * takes real records and label-log lines with undo), and chat.jsonl (every conversational
 * form).
 * Not here: data order and sharding (tests/test_dataset.c), tokenization.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "fuzz_util.h"
#include "util.h"

static FILE *devnull(void) {
    static FILE *f;
    if (!f) f = fopen("/dev/null", "w");
    return f;
}

static void check_str(const char *s, int required) {
    if (!s) {
        FUZZ_REQUIRE(!required);
        return;
    }
    FUZZ_REQUIRE(utf8_valid(s, strlen(s), NULL));
}

/* The rendering an SFT conversational record carries matches its prompt and response. */
static void check_conv(const DataRecord *r, DataKind kind) {
    if (!r->conversational || kind != DATA_SFT) {
        FUZZ_REQUIRE(r->conv.text == NULL && r->conv.n_spans == 0);
        return;
    }
    const ChatText *c = &r->conv;
    size_t np = strlen(r->prompt), nr = strlen(r->response);
    FUZZ_REQUIRE(c->text && c->n_spans >= 1 && c->len == np + nr);
    FUZZ_REQUIRE(!memcmp(c->text, r->prompt, np) && !memcmp(c->text + np, r->response, nr));
    size_t prev = 0;
    for (int s = 0; s < c->n_spans; s++) {
        FUZZ_REQUIRE(c->spans[s].begin >= prev && c->spans[s].begin <= c->spans[s].end &&
                     c->spans[s].end <= c->len);
        prev = c->spans[s].end;
    }
    FUZZ_REQUIRE(c->spans[c->n_spans - 1].begin == np);
}

static int64_t open_and_read(const char *path, DataKind kind, const DataOptions *opt) {
    Dataset d;
    char err[ERRBUF_LEN] = "";
    if (dataset_open(&d, path, kind, opt, err) != 0) {
        FUZZ_REQUIRE(strstr(err, path) != NULL);
        return -1;
    }
    FUZZ_REQUIRE(d.n >= 1);
    FUZZ_REQUIRE(d.n + d.n_undone + d.n_bad + d.n_blank + d.n_nonpair + d.n_undo == d.n_lines);
    FUZZ_REQUIRE(d.n_undone <= d.n_undo);
    if (opt->bad == DATA_BAD_FAIL) FUZZ_REQUIRE(d.n_bad == 0);
    DataRecord r;
    memset(&r, 0, sizeof r);
    for (int64_t i = 0; i < d.n; i++) {
        if (dataset_get(&d, i, &r, err) != 0) {
            fprintf(stderr, "dataset_get(%lld) of a record dataset_open accepted: %s\n",
                    (long long)i, err);
            abort();
        }
        check_str(r.prompt, 1);
        check_str(r.response, kind == DATA_SFT);
        check_str(r.chosen, kind == DATA_PREF);
        check_str(r.rejected, kind == DATA_PREF);
        check_str(r.category, 0);
        check_str(r.annotator, 0);
        if (kind != DATA_SFT) FUZZ_REQUIRE(r.response == NULL);
        if (kind != DATA_PREF) FUZZ_REQUIRE(r.chosen == NULL && r.rejected == NULL);
        check_conv(&r, kind);
    }
    data_record_free(&r);
    int64_t n = d.n;
    dataset_free(&d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzFile f;
    fuzz_memfile(&f, data, size);
    static const char *templates[] = {"chatml", "qwen2.5", "qwen3", "llama3", "plain"};
    const char *tmpl = templates[size % 5];
    for (int k = DATA_SFT; k <= DATA_PROMPT; k++) {
        DataOptions skip = {.bad = DATA_BAD_SKIP, .max_line_bytes = 0, .max_warnings = 3,
                            .log = devnull(), .chat_template = tmpl, .chat_no_thinking = size & 1};
        DataOptions fail = {.bad = DATA_BAD_FAIL, .max_line_bytes = 64, .max_warnings = 0,
                            .log = NULL, .chat_template = tmpl, .chat_no_thinking = size & 1};
        int64_t n_skip = open_and_read(f.path, (DataKind)k, &skip);
        int64_t n_fail = open_and_read(f.path, (DataKind)k, &fail);
        /* no bad line even at 64 bytes a line: the lenient open sees the same records */
        if (n_fail >= 0) FUZZ_REQUIRE(n_skip == n_fail);
    }
    fuzz_memfile_close(&f);
    return 0;
}
