/*
 * common/rankfile.h — the ranking training file that `learner rm` trains on when its
 * data holds rankings of K responses to one prompt instead of pairs (InstructGPT's
 * labelling, Ouyang et al. 2022 §3.5).
 *
 * One JSON object per line (UTF-8; blank lines and CRLF accepted; extra fields ignored):
 *   {"prompt": str, "responses": [str, ...], "ranks": [int, ...][, "category": str]}
 * with 2 <= K = len(responses) <= LABEL_RANK_MAX and ranks[i] in 1..K the place of
 * responses[i] (1 = best; equal numbers are ties). `rlhf-label export --rankings` writes
 * it; rlhf-judge --rank output is read as is (its records carry these fields). A line
 * with a "label" other than "rank" (a skip in a judgment log) is left out and counted;
 * a line with "undo" is an error: undo needs the log rules, so export the log first.
 *
 * The file is read whole into memory (rankings are few: one per labelled prompt).
 * Errors: rank_file_load returns -1 with err = "path:line: what; the fix" at the first
 * bad line (a training file is written by a program, so a bad line is a real problem).
 */
#ifndef RLHF_RANKFILE_H
#define RLHF_RANKFILE_H

#include <stdint.h>

typedef struct {
    char *prompt;
    char **resp;    /* k responses */
    int *rank;      /* k places, 1 = best */
    int k;
    char *category; /* NULL when absent */
} RankRecord;

typedef struct {
    RankRecord *rec;
    int64_t n;
    int k_max;       /* largest K in the file */
    int64_t n_pairs; /* non-tied pairs over all records */
    int64_t n_other; /* lines with another "label" (skips), left out */
} RankFile;

/* 1 if the first non-blank line of path is a JSON object with a "responses" field (a
 * ranking file), 0 otherwise (a pair file, or a file that cannot be read: the pair
 * reader then reports the problem). */
int rank_file_sniff(const char *path);
/* Read a ranking file. 0, or -1 with err (unreadable, a bad line, no record). */
int rank_file_load(RankFile *f, const char *path, char *err);
void rank_file_free(RankFile *f);

#endif
