/*
 * common/label.h — the logic behind rlhf-label (human feedback collection), kept apart
 * from the terminal so it can be unit-tested: candidate files (pairs, single responses,
 * rankings of K responses), the append-only judgment log (undo, torn last line, resume),
 * agreement statistics (percent agreement, Cohen's and Fleiss' kappa; Kendall's tau-b for
 * rankings), export to training files, and word-wrapping for display.
 *
 * Used by tools/rlhf-label.c (the interactive tool and its `stats` / `export`
 * subcommands) and tests/test_label.c. docs/labelling.md is the user's guide.
 *
 * Files (JSONL, one object per line, UTF-8):
 *   candidates, pair mode:   {"prompt","a","b"[,"category","id"]}
 *   candidates, thumbs mode: {"prompt","response"[,"category","id"]}
 *   candidates, rank mode:   {"prompt","responses":[r1..rK][,"category","id"]},
 *                            LABEL_RANK_ITEM_MIN <= K <= LABEL_RANK_ITEM_MAX
 *   The id of an item is its "id" field (string or integer) or, without one, a stable
 *   content hash "h" + 16 hex digits (label_item_hash_id).
 *   judgment log (PREFS.jsonl), one line per event, appended and fsync'd, never rewritten:
 *     A/B:       {"prompt","chosen","rejected","annotator","time","label":"A"|"B","id"[,"category"]}
 *     tie/skip:  {"prompt","a","b","annotator","time","label":"tie"|"skip","id"[,"category"]}
 *                (no chosen/rejected: these are not training pairs)
 *     thumbs:    {"prompt","response","annotator","time","label":"up"|"down"|"skip","id"[,"category"]}
 *     ranking:   {"prompt","responses","ranks","annotator","time","label":"rank","id"[,"category"]}
 *                ranks[i] = place of responses[i], 1 = best; equal numbers are ties
 *                (2 <= K <= LABEL_RANK_MAX, 1 <= ranks[i] <= K)
 *     rank skip: {"prompt","responses","annotator","time","label":"skip","id"[,"category"]}
 *     undo:      {"undo": id,"annotator","time"}
 *   A record without "id" (rlhf-judge may write none) gets the content id of the item it
 *   judged, rebuilt from its texts (A: a = chosen, b = rejected; B: swapped; tie/skip: a,
 *   b; thumbs: response; ranking: responses), so it matches the tool's records of the same candidates line.
 *   The live judgment of (annotator, id) is the last one not cancelled by an undo; an undo
 *   cancels the last not-yet-cancelled judgment of its (annotator, id) read before it
 *   (files are read in the order given, lines in order). So undo works like a stack.
 *
 * What this does not do: talk to the terminal (that is the tool), lock files, or decide
 * which items a person sees next.
 *
 * Errors: functions that read user files return -1 and fill err (ERRBUF_LEN) with
 * file:line and what to do; bad log lines are not fatal (a crash can leave a torn last
 * line): they are skipped and each one is reported in LabelLog.warnings.
 */
#ifndef RLHF_LABEL_H
#define RLHF_LABEL_H

#include <jansson.h>
#include <stdio.h>
#include <time.h>

#include "util.h"

typedef enum { LABEL_MODE_PAIR = 0, LABEL_MODE_THUMBS = 1, LABEL_MODE_RANK = 2 } LabelMode;

/* Responses per ranking: the terminal tool names them with the keys 1..9, so candidates
 * hold 3..9 (fewer is pair mode); log and training records may hold 2..LABEL_RANK_MAX
 * (rlhf-judge writes any K). */
#define LABEL_RANK_ITEM_MIN 3
#define LABEL_RANK_ITEM_MAX 9
#define LABEL_RANK_MAX 64

typedef enum {
    LABEL_A = 0,
    LABEL_B,
    LABEL_TIE,
    LABEL_SKIP,
    LABEL_UP,
    LABEL_DOWN,
    LABEL_RANK,
    LABEL_COUNT
} LabelKind;

/* "A","B","tie","skip","up","down","rank" */
const char *label_kind_name(LabelKind k);
/* the LabelKind of a name above, or -1 */
int label_kind_parse(const char *s);
/* 1 if k can be given in mode m (skip in both) */
int label_kind_in_mode(LabelKind k, LabelMode m);

// ----------------------------------------------------------------------------
// candidate items

#define LABEL_HASH_ID_LEN 18 /* "h" + 16 hex + NUL */

typedef struct {
    char *id;
    char *prompt;
    char *a;        /* pair: response A; thumbs: the response */
    char *b;        /* pair: response B; thumbs: NULL */
    char *category; /* NULL when the line has none */
    int line;       /* 1-based line in the candidates file */
    char **resp;    /* rank mode: the K responses (a and b are NULL); else NULL */
    int n_resp;
} LabelItem;

typedef struct LabelMap LabelMap; /* private string -> int index */

typedef struct {
    LabelItem *items;
    int n;
    LabelMode mode;
    LabelMap *by_id;
} LabelItems;

/* Read a candidates file. Any bad line is fatal for the file (returns -1, err names
 * path:line and the fix): not UTF-8, not a JSON object, a missing or non-string field, a
 * line of the other mode, a duplicate id. Blank lines are skipped; CRLF is accepted. An
 * empty file is an error. On success the caller frees with label_items_free. */
int label_items_load(LabelItems *it, const char *path, LabelMode mode, char *err);
void label_items_free(LabelItems *it);
/* index of the item with this id, or -1 */
int label_items_find(const LabelItems *it, const char *id);
/* The content id used when a line has no "id": FNV-1a 64 (Fowler, Noll, Vo) over the
 * mode tag and each field's length and bytes, printed as "h%016llx". b is NULL in thumbs
 * mode. Stable across runs, machines and versions of this program. */
void label_item_hash_id(char out[LABEL_HASH_ID_LEN], LabelMode mode, const char *prompt,
                        const char *a, const char *b);
/* The content id of a rank-mode line: the same hash with mode tag 'R' over the prompt
 * and the K responses in order. */
void label_item_hash_id_rank(char out[LABEL_HASH_ID_LEN], const char *prompt,
                             const char *const *resp, int k);

// ----------------------------------------------------------------------------
// the judgment log

typedef struct {
    char *annotator;
    char *id;
    char *time;
    LabelKind label;
    int file;    /* index into LabelLog.files */
    int line;    /* 1-based line in that file (0 for records applied in memory) */
    int undone;  /* cancelled by a later undo record */
    int prev;    /* previous not-undone judgment of the same (annotator, id), or -1 */
    json_t *rec; /* the parsed record (owned), for export */
    int *ranks;  /* LABEL_RANK: ranks[i] of responses[i] (1 = best), else NULL */
    int n_ranks;
} LabelJudgment;

typedef struct {
    LabelJudgment *j;
    int n, cap;
    char **files;
    int n_files;
    char **warnings; /* one "path:line: what (skipped)" per line not used */
    int n_warnings;
    int n_torn;            /* torn last lines (a crash while writing) */
    int n_undo;            /* undo records that cancelled a judgment */
    int n_undo_unmatched;  /* undo records with nothing to cancel (reported) */
    LabelMap *live;        /* "annotator\x1fid" -> index of the live judgment */
} LabelLog;

void label_log_init(LabelLog *log);
void label_log_free(LabelLog *log);
/* Read one log file and apply its records after those already read. A missing file is
 * an empty log when missing_ok (the first run of the tool), else an error. Unreadable
 * files return -1 with err; bad lines (torn, not JSON, not UTF-8, unknown label, missing
 * field) are skipped and reported in log->warnings, never fatal. */
int label_log_read(LabelLog *log, const char *path, int missing_ok, char *err);
/* Apply one record (a line without its newline) as if read from file index `file` at
 * line `line`. Returns 0, or -1 with err when the record is not a valid judgment or undo
 * (nothing is changed then). The tool applies what it has just written this way, so the
 * in-memory state follows exactly the rules a later reader of the file applies. */
int label_log_apply(LabelLog *log, const char *text, size_t len, int file, int line,
                    char *err);
/* index of the live judgment of (annotator, id), or -1 */
int label_log_live(const LabelLog *log, const char *annotator, const char *id);
/* 1 if judgment i is the live one of its (annotator, id) */
int label_log_is_live(const LabelLog *log, int i);

// ----------------------------------------------------------------------------
// writing records

/* ISO 8601 UTC, "2024-05-01T12:34:56Z" */
void label_time_iso8601(char out[32], time_t t);
/* The log line (with its trailing '\n', malloc'd) for judging item `it` with label k. */
char *label_record_judgment(const LabelItem *it, LabelMode mode, LabelKind k,
                            const char *annotator, const char *time_iso);
/* The log line (with '\n', malloc'd) for ranking rank-mode item `it`: ranks[i] is the
 * place of it->resp[i] (1 = best, equal values tie), each in 1..it->n_resp. */
char *label_record_rank(const LabelItem *it, const int *ranks, const char *annotator,
                        const char *time_iso);
/* The log line (with '\n', malloc'd) that undoes the live judgment of (annotator, id). */
char *label_record_undo(const char *id, const char *annotator, const char *time_iso);
/* write(2) the whole line to fd (looping on short writes and EINTR), then fsync(2).
 * Returns 0, or -1 with err naming `what` (the path) and the errno reason. */
int label_append_line(int fd, const char *line, const char *what, char *err);
/* Open a judgment log for appending (created if missing), refuse a second writer (an
 * exclusive flock: the terminal tool and the web server lock alike), and end a torn last
 * line with a newline so the next record starts on a line of its own. Returns the fd, or
 * -1 with err. */
int label_log_open(const char *path, char *err);

// ----------------------------------------------------------------------------
// agreement statistics

/* Cohen's kappa (Cohen 1960, "A coefficient of agreement for nominal scales", eq. 1):
 * kappa = (p_o - p_e) / (1 - p_e) for a k x k confusion matrix conf[i*k+j] = items
 * rater 1 put in category i and rater 2 in j; p_o = sum_i conf[ii] / N,
 * p_e = sum_i (row_i / N)(col_i / N). NaN when N = 0 or p_e = 1 (both raters used a
 * single, identical category: kappa is undefined). p_o, p_e may be NULL. */
double label_cohen_kappa(const long *conf, int k, double *p_o, double *p_e);

/* Fleiss' kappa (Fleiss 1971, "Measuring nominal scale agreement among many raters",
 * eqs. 2-9) for N items each rated by the same number n >= 2 of raters into k
 * categories, counts[i*k+j] = raters who put item i in category j:
 *   p_j = sum_i n_ij / (N n),  P_i = (sum_j n_ij^2 - n) / (n (n - 1)),
 *   P = mean_i P_i,  P_e = sum_j p_j^2,  kappa = (P - P_e) / (1 - P_e).
 * NaN when N = 0, the rows do not all sum to the same n >= 2, or P_e = 1. */
double label_fleiss_kappa(const long *counts, int n_items, int k, double *p_bar,
                          double *p_e);

typedef struct {
    int a, b;      /* annotator indices, a < b */
    long n_common; /* items both judged (skips excluded) */
    long n_agree;
    double kappa;  /* Cohen; NaN when undefined */
} LabelPairStat;

typedef struct {
    int n_raters; /* every item in the group has exactly this many raters */
    long n_items;
    double kappa; /* Fleiss; NaN when undefined */
} LabelFleissGroup;

/* Kendall's tau-b (Kendall 1945, "The treatment of ties in ranking problems", Biometrika
 * 33:239-251) between two rankings of the same n items, x[i] and y[i] the places of item
 * i (smaller = better; equal values tie):
 *   tau_b = (n_c - n_d) / sqrt((n_0 - n_1)(n_0 - n_2)),  n_0 = n(n-1)/2,
 * n_c / n_d the concordant / discordant pairs (a pair tied in x or y is neither), n_1 /
 * n_2 the pairs tied in x / in y. NaN when n < 2 or either ranking ties every item. */
double label_kendall_tau_b(const int *x, const int *y, int n);

typedef enum { LABEL_ALPHA_NOMINAL = 0, LABEL_ALPHA_ORDINAL, LABEL_ALPHA_INTERVAL } LabelAlphaMetric;

/* Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's alpha-reliability",
 * Annenberg School, sections C-E) for n_units units and m coders: v[u*m + c] is the value
 * (an integer >= 1) coder c gave unit u, 0 when missing. Units with fewer than two values
 * are not pairable and left out. With the coincidences o_ck = sum_u (c-k pairs in u) /
 * (m_u - 1), n_c = sum_k o_ck, n = sum_c n_c:
 *   alpha = 1 - (n - 1) sum_ck o_ck d2(c,k) / sum_ck n_c n_k d2(c,k)
 * d2 = [c != k] (nominal), (c - k)^2 (interval), or (sum_{g=c..k} n_g - (n_c + n_k)/2)^2
 * (ordinal). NaN when fewer than two pairable values or the expected disagreement is 0. */
double label_krippendorff_alpha(const int *v, int n_units, int m, LabelAlphaMetric metric);

typedef struct {
    int a, b;        /* annotator indices, a < b */
    long n_common;   /* items both ranked (same K) */
    long n_defined;  /* ... of which tau-b is defined (neither ranking ties everything) */
    double tau_mean; /* mean tau-b over those; NaN when none */
} LabelRankPairStat;

typedef struct {
    int n_annotators;
    char **annotators;          /* sorted by name */
    long (*counts)[LABEL_COUNT]; /* live judgments per annotator and label */
    long *undone;               /* undone judgments per annotator */
    long n_superseded;          /* neither live nor undone: judged again later by the
                                   same annotator (only the last judgment counts) */
    long n_items;               /* items with >= 1 live judgment that is not a skip */
    long n_items_single;        /* ... of which judged by exactly one annotator */
    LabelPairStat *pairs;       /* annotator pairs sharing >= 1 item */
    int n_pairs;
    long pooled_common, pooled_agree; /* summed over pairs */
    LabelFleissGroup *groups;   /* one per number of raters >= 2, ascending */
    int n_groups;
    long n_rank_items;          /* items with >= 1 live ranking */
    LabelRankPairStat *rank_pairs; /* annotator pairs sharing >= 1 ranked item */
    int n_rank_pairs;
    long rank_pooled_defined;   /* summed over rank_pairs */
    double rank_pooled_tau;     /* mean tau-b over every (pair, item); NaN when none */
    double rank_alpha;          /* Krippendorff's alpha (ordinal) over the places given to
                                   every response of the items ranked by >= 2 annotators
                                   (unit = one response, coder = annotator); NaN if none */
} LabelStats;

/* Statistics over the live judgments of a log. Skips are counted per annotator but are
 * no opinion about an item: they are left out of every agreement number. Categories are
 * A, B, tie, up, down; items are matched across annotators by id. Rankings are not a
 * nominal category: they enter only the Kendall tau-b part (two rankings of one id with
 * a different K, which a reused id could give, are not compared). */
void label_stats_compute(LabelStats *st, const LabelLog *log);
void label_stats_print(FILE *f, const LabelStats *st);
void label_stats_free(LabelStats *st);

// ----------------------------------------------------------------------------
// export

/* Write the live judgments as a training file to f: pairs (thumbs = 0): A/B judgments as
 * {"prompt","chosen","rejected"[,"category"],"annotator","id"}; thumbs (thumbs = 1):
 * up/down judgments as TRL unpaired/KTO lines {"prompt","completion","label":true|false
 * [,"category"],"annotator","id"}. Ties, skips and undone judgments are left out. Returns
 * the number of lines written, or -1 on a write error. */
long label_export(FILE *f, const LabelLog *log, int thumbs);
/* Pairs export (thumbs = 0) also writes every live ranking as its K(K-1)/2 pairs minus
 * the tied ones, each {"prompt","chosen","rejected"[,"category"],"annotator","id",
 * "weight": 1/C(K,2),"group": "<annotator>/<id>"} (InstructGPT's per-prompt weighting,
 * Ouyang et al. 2022 eq. 1; a reader that ignores weight and group trains on the pairs
 * unweighted). label_export_rankings writes the live rankings as the ranking training
 * file `learner rm` reads (common/rankfile.h): {"prompt","responses","ranks"
 * [,"category"],"annotator","id"}. Returns lines written, or -1 on a write error. */
long label_export_rankings(FILE *f, const LabelLog *log);

// ----------------------------------------------------------------------------
// display helpers

/* Display width of one code point in a terminal: 0 for combining marks and zero-width
 * characters, 2 for East Asian wide/fullwidth and emoji blocks, else 1 (a small table
 * of ranges, not a full Unicode East Asian Width implementation). */
int label_cp_width(unsigned cp);

typedef struct {
    char **line; /* sanitised UTF-8, no control characters */
    int *width;  /* display width of each line (<= the wrap width) */
    int n, cap;
} LabelLines;

/* Word-wrap UTF-8 text to `width` columns (>= 1) and append the lines to out: '\n'
 * breaks lines, tabs become four spaces, other control characters
 * (ESC included, so a response cannot drive the terminal) and invalid bytes are shown as
 * U+FFFD; words longer than a line are split; spaces at a wrap point are dropped. An
 * empty text gives one empty line. */
void label_wrap(LabelLines *out, const char *text, int width);
void label_lines_free(LabelLines *l);

#endif
