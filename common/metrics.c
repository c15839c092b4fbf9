/*
 * common/metrics.c — metrics.jsonl lines with non-finite numbers written as null (see
 * metrics.h). A single pass over the fields text: strings are copied as they are, the
 * last string followed by ':' is remembered as the current key, and a bare token
 * [+-]nan / [+-]inf (any case, any alphanumeric tail) becomes null.
 */
#include "metrics.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define KEY_MAX 64

/* Length of the non-finite token at s ([+-]nan... / [+-]inf...), 0 if there is none. */
static size_t nonfinite_token(const char *s) {
    size_t i = (*s == '-' || *s == '+') ? 1 : 0;
    if (strncasecmp(s + i, "nan", 3) != 0 && strncasecmp(s + i, "inf", 3) != 0) return 0;
    i += 3;
    while (isalnum((unsigned char)s[i]) || s[i] == '(' || s[i] == ')' || s[i] == '_') i++;
    return i;
}

/* The string starting at the quote s[0]: its end (one past the closing quote) and the
 * key text (unescaped bytes as they are, truncated) into key. */
static const char *copy_string(const char *s, char *key) {
    size_t n = 0;
    const char *p = s + 1;
    while (*p && *p != '"') {
        if (*p == '\\' && p[1]) p++;
        if (n + 1 < KEY_MAX) key[n++] = *p;
        p++;
    }
    key[n] = '\0';
    return *p ? p + 1 : p;
}

int metrics_write_line(FILE *out, FILE *log, const char *stage, long step, double time,
                       const char *fields) {
    size_t len = strlen(fields);
    char *buf = xmalloc(2 * len + 1); /* "nan" -> "null" grows 3 bytes to 4 */
    char key[KEY_MAX] = "", last[KEY_MAX] = "";
    size_t o = 0;
    int replaced = 0;
    for (const char *p = fields; *p;) {
        if (*p == '"') {
            const char *end = copy_string(p, last);
            memcpy(buf + o, p, (size_t)(end - p));
            o += (size_t)(end - p);
            p = end;
            const char *q = p;
            while (isspace((unsigned char)*q)) q++;
            if (*q == ':') memcpy(key, last, sizeof key);
            continue;
        }
        size_t n = (p == fields || strchr(":,[ ", p[-1])) ? nonfinite_token(p) : 0;
        if (n > 0) {
            if (log)
                fprintf(log, "metrics: %s = %.*s at step %ld (stage %s) written as null\n",
                        key[0] ? key : "?", (int)n, p, step, stage);
            memcpy(buf + o, "null", 4);
            o += 4;
            p += n;
            replaced++;
            continue;
        }
        buf[o++] = *p++;
    }
    buf[o] = '\0';
    fprintf(out, "{\"stage\": \"%s\", \"step\": %ld, \"time\": %.3f, %s}\n", stage, step, time,
            buf);
    fflush(out);
    if (log && replaced) fflush(log);
    free(buf);
    return replaced;
}
