/*
 * fuzz/fuzz_config.c — libFuzzer target for the INI configuration parser, common/config.h.
 *
 * Each input is the text of a config file. It is applied on top of the defaults with
 * config_parse_text and, when it parses, checked with config_validate. Properties checked
 * besides "no crash, leak, UB or hang":
 *   - a rejected text has an error message that names the source ("fuzz.ini");
 *   - an accepted one round-trips: config_to_text then config_from_text gives a config
 *     with no differences (config_diff == 0) whenever the first one validates, and the
 *     text written is stable (writing the re-read config gives the same text).
 * Also every line of the input is tried as a command-line override (config_override),
 * since users type those too.
 * Seeds: fuzz/corpus/fuzz_config/, the files in configs/ and config_to_text output.
 * Not here: what a key means to a stage.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_cstr(data, size);
    char err[ERRBUF_LEN] = "";
    static RlhfConfig c, c2, c3; /* large (paths are fixed-size strings): not on the stack */
    config_defaults(&c);
    if (config_parse_text(&c, text, "fuzz.ini", err) != 0) {
        FUZZ_REQUIRE(strstr(err, "fuzz.ini") != NULL);
    } else if (config_validate(&c, err) == 0) {
        char *t1 = config_to_text(&c);
        err[0] = '\0';
        if (config_from_text(&c2, t1, "roundtrip", err) != 0) {
            fprintf(stderr, "config_to_text output does not read back: %s\n", err);
            abort();
        }
        char diff[2048];
        if (config_diff(&c, &c2, diff, sizeof diff) != 0) {
            fprintf(stderr, "config round trip differs:\n%s", diff);
            abort();
        }
        char *t2 = config_to_text(&c2);
        FUZZ_REQUIRE(strcmp(t1, t2) == 0);
        free(t1);
        free(t2);
    } else {
        FUZZ_REQUIRE(err[0] != '\0');
    }
    /* every line as an override "section.key=value" */
    config_defaults(&c3);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        err[0] = '\0';
        if (config_override(&c3, line, err) != 0) FUZZ_REQUIRE(err[0] != '\0');
    }
    free(text);
    return 0;
}
