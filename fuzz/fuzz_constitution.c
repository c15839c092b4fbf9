/*
 * fuzz/fuzz_constitution.c — libFuzzer target for the constitution decoder,
 * common/constitution.h (the principles rlhf-cai reads).
 *
 * Each input is the text of a constitution file, parsed with constitution_parse.
 * Properties checked besides "no crash, leak, UB or hang":
 *   - a rejected text has an error that names the source ("fuzz.jsonl"), and nothing is
 *     left allocated in the Constitution (n 0, p NULL);
 *   - an accepted one has 1..CONSTITUTION_MAX principles, each with four non-empty
 *     fields no longer than CONSTITUTION_MAX_FIELD, unique names, and a line number
 *     inside the text; constitution_pick stays in range.
 * Seeds: fuzz/corpus/fuzz_constitution/ (configs/constitution.jsonl and bad variants).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "constitution.h"
#include "fuzz_util.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[ERRBUF_LEN] = "";
    Constitution c;
    if (constitution_parse(&c, (const char *)data, size, "fuzz.jsonl", err) != 0) {
        FUZZ_REQUIRE(strstr(err, "fuzz.jsonl") != NULL);
        FUZZ_REQUIRE(c.n == 0 && c.p == NULL);
        return 0;
    }
    size_t lines = 1;
    for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
    FUZZ_REQUIRE(c.n >= 1 && c.n <= CONSTITUTION_MAX);
    for (int i = 0; i < c.n; i++) {
        const Principle *p = &c.p[i];
        const char *f[4] = {p->name, p->critique, p->revision, p->comparison};
        for (int k = 0; k < 4; k++)
            FUZZ_REQUIRE(f[k] && f[k][0] && strlen(f[k]) <= CONSTITUTION_MAX_FIELD);
        FUZZ_REQUIRE(p->line >= 1 && (size_t)p->line <= lines);
        for (int j = 0; j < i; j++) FUZZ_REQUIRE(strcmp(p->name, c.p[j].name) != 0);
    }
    int k = constitution_pick(&c, size, 1, 2);
    FUZZ_REQUIRE(k >= 0 && k < c.n);
    constitution_free(&c);
    return 0;
}
