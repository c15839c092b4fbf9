/*
 * tests/test_metrics.c — metrics.jsonl stays valid JSON whatever the numbers: lines with
 * nan, -nan, inf and -inf values (as printf writes them, top level and nested) are parsed
 * back with jansson; those values must come back as null, every finite value and every
 * string (including the text "nan") unchanged, and the log must name each replaced metric
 * with its step.
 */
#include "metrics.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test.h"

/* Read the whole of f (rewound) into buf. */
static void slurp(FILE *f, char *buf, size_t cap) {
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
}

static void test_nonfinite_become_null(void) {
    FILE *out = tmpfile(), *log = tmpfile();
    CHECK(out && log);
    if (!out || !log) return;
    double nan_v = NAN, inf_v = INFINITY;
    char fields[512];
    snprintf(fields, sizeof fields,
             "\"loss\": %.6f, \"grad_norm\": %.6g, \"kl\": %.6g, \"lr\": %.6g, "
             "\"note\": \"nan, inf\", "
             "\"per_category\": {\"fact\": {\"accuracy\": %.6f, \"margin\": %g}}, "
             "\"score\": %.6f",
             nan_v, -nan_v, inf_v, 3e-4, -inf_v, 0.25, 1.5);
    CHECK(strstr(fields, "nan") && strstr(fields, "-inf")); /* printf really wrote them */
    CHECK_EQ_INT(metrics_write_line(out, log, "dpo", 7, 1.5, fields), 4);
    CHECK_EQ_INT(metrics_write_line(out, log, "dpo", 8, 2.0, "\"loss\": 0.5"), 0);

    char text[4096];
    slurp(out, text, sizeof text);
    char *save = NULL;
    int lines = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        CHECK_MSG(o != NULL, "line %d is not JSON: %s (%s)", lines + 1, jerr.text, line);
        lines++;
        if (!o) continue;
        if (lines == 1) {
            CHECK(json_is_null(json_object_get(o, "loss")));
            CHECK(json_is_null(json_object_get(o, "grad_norm")));
            CHECK(json_is_null(json_object_get(o, "kl")));
            CHECK_NEAR(json_number_value(json_object_get(o, "lr")), 3e-4, 1e-12, 0);
            CHECK(!strcmp(json_string_value(json_object_get(o, "note")), "nan, inf"));
            json_t *fact = json_object_get(json_object_get(o, "per_category"), "fact");
            CHECK(json_is_null(json_object_get(fact, "accuracy")));
            CHECK_NEAR(json_number_value(json_object_get(fact, "margin")), 0.25, 0, 0);
            CHECK_NEAR(json_number_value(json_object_get(o, "score")), 1.5, 0, 0);
            CHECK_EQ_INT(json_integer_value(json_object_get(o, "step")), 7);
            CHECK(!strcmp(json_string_value(json_object_get(o, "stage")), "dpo"));
        } else {
            CHECK_NEAR(json_number_value(json_object_get(o, "loss")), 0.5, 0, 0);
        }
        json_decref(o);
    }
    CHECK_EQ_INT(lines, 2);

    char notes[2048];
    slurp(log, notes, sizeof notes);
    fputs(notes, stderr);
    CHECK(strstr(notes, "metrics: loss = nan at step 7 (stage dpo) written as null") != NULL);
    CHECK(strstr(notes, "metrics: grad_norm = -nan at step 7") != NULL);
    CHECK(strstr(notes, "metrics: kl = inf at step 7") != NULL);
    CHECK(strstr(notes, "metrics: accuracy = -inf at step 7") != NULL);
    CHECK(strstr(notes, "step 8") == NULL);
    fclose(out);
    fclose(log);
}

int main(void) {
    TEST_RUN(test_nonfinite_become_null);
    return TEST_EXIT();
}
