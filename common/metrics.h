/*
 * common/metrics.h — the metrics.jsonl line writer: one JSON object per line,
 *     {"stage": "sft", "step": 12, "time": 3.456, <fields>}
 * where fields is the inside of a JSON object the stage formatted with printf
 * ("\"loss\": 1.25, \"lr\": 3e-4, ...", nested objects allowed).
 *
 * printf writes a non-finite double as nan, -nan, inf or -inf, which is not JSON: one such
 * value makes a JSON reader reject the line (and many reject the whole file). The writer
 * replaces each by null and reports it on `log`, one line per value naming the metric
 * (its innermost key) and the step, so a diverging run stays visible and its file stays
 * readable. Strings are copied untouched ("nan" inside quotes is text, not a number).
 */
#ifndef RLHF_METRICS_H
#define RLHF_METRICS_H

#include <stdio.h>

/* Write the line to out and flush it; log (may be NULL) gets the replacement notices.
 * Returns the number of non-finite values written as null. */
int metrics_write_line(FILE *out, FILE *log, const char *stage, long step, double time,
                       const char *fields);

#endif
