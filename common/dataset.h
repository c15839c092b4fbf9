/*
 * common/dataset.h — JSONL datasets (the TRL conventions), streamed, and the data order
 * of a run: seeded per-epoch permutations, global batches sharded over ranks, a cursor
 * that checkpoints save, a held-out split, and the prompt/response truncation policy.
 *
 * Kinds (one JSON object per line; extra fields are ignored):
 *   DATA_SFT     {"prompt": str, "response": str}
 *   DATA_PREF    {"prompt": str, "chosen": str, "rejected": str[, "category": str,
 *                 "annotator": str, "p_chosen": number]}
 * "p_chosen" is a soft label: the probability in [0, 1] that chosen is preferred to
 * rejected (AI feedback, tools/rlhf-cai.c); absent means 1 (a hard label).
 *   DATA_PROMPT  {"prompt": str[, "category": str]}
 * "category" and "annotator" are optional in every kind (null = absent).
 * Conversational records (TRL's; chat_record.h) put message lists [{"role", "content"}]
 * where the strings are: DATA_SFT {"messages": [...]}, DATA_PREF {"prompt": [...],
 * "chosen": [...], "rejected": [...]} or {"chosen": [...], "rejected": [...]} (implicit
 * prompt), DATA_PROMPT {"prompt": [...]}. They are rendered with the dataset's chat
 * template (DataOptions.chat_*; chat.h) into the same prompt/response/chosen/rejected
 * texts, so a reader that takes plain records takes them too; an SFT record also carries
 * the whole rendering with its assistant spans (DataRecord.conv). Plain and
 * conversational records may be mixed in one file. Preference files
 * may also be raw rlhf-label judgment logs (common/label.h): a record whose "label" is
 * tie, skip, up or down is not a training pair and is left out (counted, no warning); an
 * {"undo": id, "annotator": a} record cancels the latest live judgment of (a, id) before
 * it (a stack, as in label.h), and a cancelled pair is left out too. Blank lines are
 * ignored; a trailing '\r' (CRLF files) is stripped.
 *
 * Streaming: dataset_open reads the file once, validates every line and keeps only the
 * byte offset of each valid record (8 bytes per record); dataset_get re-reads one record
 * with pread and parses it. A bad line — malformed JSON, not an object, a missing field,
 * a field of the wrong type, invalid UTF-8, a line longer than max_line_bytes, an
 * unmatched undo — is reported as "path:line: what is wrong" and, per policy, skipped
 * (warned line by line up to max_warnings, then a count at the end) or fatal (the first
 * one fails the open). An empty file, or one without a valid record, always fails.
 *
 * Data order: the stream of a run is epoch 0's permutation of the n records, then epoch
 * 1's, ...; epoch e's permutation is a Fisher–Yates shuffle driven by
 * rng_init_keyed(seed, e, 0), so the order depends only on (seed, epoch) (identity when
 * shuffle is off). A global batch is the next G positions of that stream (a batch may
 * run over an epoch boundary; no record is dropped or repeated within an epoch). Rank r
 * of R takes the contiguous slice [floor(G r / R), floor(G (r+1) / R)) of the batch, so
 * the set of records in every global batch does not depend on R; only which rank
 * computes which record does. The cursor (seed, epoch, pos, n) is 4 int64 words.
 *
 * Ownership: dataset_open allocates, dataset_free releases (free(NULL)-like no-op on a
 * zeroed or freed Dataset). A Dataset is not thread-safe (one read buffer). Nothing here
 * calls MPI; every rank opens the file itself, and only one should pass a log FILE.
 */
#ifndef RLHF_DATASET_H
#define RLHF_DATASET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "chat.h"
#include "config.h"
#include "util.h"

typedef enum { DATA_SFT = 0, DATA_PREF = 1, DATA_PROMPT = 2 } DataKind;
typedef enum { DATA_BAD_SKIP = 0, DATA_BAD_FAIL = 1 } DataBadPolicy;

#define DATA_DEFAULT_MAX_LINE (1u << 20)
#define DATA_DEFAULT_MAX_WARNINGS 20

typedef struct {
    DataBadPolicy bad;     /* skip (warn, count) or fail at the first bad line */
    size_t max_line_bytes; /* 0 = DATA_DEFAULT_MAX_LINE (1 MiB), excluding the '\n' */
    int max_warnings;      /* bad lines reported one by one (0 = DATA_DEFAULT_MAX_WARNINGS) */
    FILE *log;             /* warnings and the summary go here; NULL = silent */
    /* chat template of conversational records (chat_template_resolve): a name or "auto"
     * (NULL = "auto"), the model's Jinja text for auto (NULL = none: then a
     * conversational record is a bad line that says to set chat.template), the llama3
     * date (NULL = CHAT_DEFAULT_DATE), Qwen3 thinking off. Plain records never need it. */
    const char *chat_template;
    const char *chat_jinja;
    const char *chat_date;
    bool chat_no_thinking;
} DataOptions;

/* Options from the config: run.bad_data, data.max_line_bytes, chat.template, chat.date,
 * chat.enable_thinking (pointers into c); log as given; chat_jinja NULL — a caller that
 * holds the model's chat template (CkptMeta.chat_template) sets it for chat.template =
 * auto. */
DataOptions data_options_from_config(const RlhfConfig *c, FILE *log);

typedef struct {
    char *path;
    DataKind kind;
    int fd;
    int64_t n;                  /* valid records */
    int64_t *offset;            /* (n) byte offset of each valid record's line in the file */
    int64_t n_lines;            /* lines read (the last one may lack a '\n') */
    int64_t n_bad;              /* bad lines skipped */
    int64_t n_blank;            /* blank lines */
    int64_t n_nonpair;          /* PREF: tie/skip/up/down judgments left out */
    int64_t n_undo;             /* PREF: undo records honoured (each cancels one judgment) */
    int64_t n_undone;           /* PREF: pairs cancelled by an undo */
    int64_t n_conv;             /* valid conversational records */
    ChatTemplate chat;          /* the resolved chat template (chat_ok) */
    int chat_ok;
    char chat_err[ERRBUF_LEN];  /* why there is none (!chat_ok) */
    char first_bad[ERRBUF_LEN]; /* "path:line: ..." of the first bad line, "" if none */
    size_t max_line_bytes;
    char *buf; /* read buffer of dataset_get */
    size_t buf_cap;
} Dataset;

/* One record; every string is NUL-terminated UTF-8, malloc'd, NULL when absent (response
 * only in SFT, chosen/rejected only in PREF). Reuse one DataRecord across dataset_get
 * calls; data_record_free releases the strings. A conversational record has its texts
 * rendered (chat_record.h) and conversational = 1; an SFT one also has conv, the whole
 * conversation with the byte spans of every assistant turn (for a loss on all of them;
 * prompt/response split at the last one). */
typedef struct {
    char *prompt, *response, *chosen, *rejected, *category, *annotator;
    int conversational;
    ChatText conv;   /* SFT conversational only; zero otherwise */
    double p_chosen; /* PREF: P(chosen preferred), 1 unless the record has "p_chosen" */
} DataRecord;

/* 1 when r's texts were rendered by a chat template with markup (not plain): they are
 * encoded with special-token strings as ids (chat_tokenize, BPE_ENCODE_SPECIAL) and end
 * at the template's end-of-turn token (chat_eot_id). Plain records: 0, encoded as text. */
int dataset_chat_formatted(const Dataset *d, const DataRecord *r);

/* "sft" | "pref" | "prompt" */
const char *data_kind_name(DataKind k);

/* Index path as a dataset of this kind. 0, or -1 with err (the file cannot be read, is
 * empty, has no valid record, or — policy fail — the first bad line). opt may be NULL
 * (skip policy, defaults, silent). */
int dataset_open(Dataset *d, const char *path, DataKind kind, const DataOptions *opt, char *err);
void dataset_free(Dataset *d);

/* Read record i (0 <= i < n) into r (previous strings freed). 0, or -1 with err when the
 * file cannot be read or no longer holds a valid record there (changed since opened). */
int dataset_get(Dataset *d, int64_t i, DataRecord *r, char *err);
void data_record_free(DataRecord *r);

// ----------------------------------------------------------------------------
// data order

typedef struct {
    int64_t seed;  /* data-order seed (run.seed) */
    int64_t epoch; /* current epoch, from 0 */
    int64_t pos;   /* positions of the current epoch already consumed, 0 <= pos < n */
    int64_t n;     /* records the order is over */
} DataCursor;

#define DATA_CURSOR_WORDS 4

typedef struct {
    DataCursor cur;
    bool shuffle;
    int *perm;          /* (n) permutation of perm_epoch, or NULL */
    int64_t perm_epoch; /* -1 when perm is not computed */
} DataSampler;

/* A sampler over n records (1 <= n <= INT32_MAX) at epoch 0, position 0. */
void data_sampler_init(DataSampler *s, int64_t n, uint64_t seed, bool shuffle);
void data_sampler_free(DataSampler *s);
/* The record at position pos (0 <= pos < n) of epoch's order. */
int64_t data_sampler_at(DataSampler *s, int64_t epoch, int64_t pos);
/* The next global batch of G records: writes this rank's slice into idx (room for
 * data_shard_size(G, rank, nranks) entries) and returns its length; every rank advances
 * the cursor by G, whatever its slice. */
int data_sampler_next(DataSampler *s, int G, int rank, int nranks, int64_t *idx);
/* Rank r's slice [*begin, *end) of a global batch of G positions over nranks. */
void data_shard(int G, int rank, int nranks, int *begin, int *end);
int data_shard_size(int G, int rank, int nranks);

/* The cursor as DATA_CURSOR_WORDS int64 (seed, epoch, pos, n) and back. Restoring
 * checks the words (n must equal the sampler's, 0 <= pos < n, epoch >= 0) and adopts the
 * saved seed so an interrupted order continues exactly. 0, or -1 with err. */
void data_cursor_save(const DataSampler *s, int64_t out[DATA_CURSOR_WORDS]);
int data_cursor_restore(DataSampler *s, const int64_t in[DATA_CURSOR_WORDS], char *err);

// ----------------------------------------------------------------------------
// held-out split and truncation

/* 1 if record i is in the held-out part: rng_mix64(seed ^ rng_mix64(i)) / 2^64 < frac.
 * Deterministic in (i, frac, seed) and independent of everything else; about frac of
 * the records. Because it keys on the record index, editing the file (adding or fixing
 * lines before i) moves records between parts. */
int data_split_is_eval(int64_t i, double frac, uint64_t seed);
/* Index lists of both parts of records 0..n-1 (malloc'd, caller frees; either may be
 * empty, then the pointer is still a valid allocation). */
void data_split(int64_t n, double frac, uint64_t seed, int64_t **train, int64_t *n_train,
                int64_t **eval, int64_t *n_eval);

#define DATA_CUT_PROMPT 1
#define DATA_CUT_RESPONSE 2

/* The [data] truncation policy, in place: a prompt longer than max_prompt keeps its
 * last max_prompt tokens when cut_left (data.truncate_prompt = left: the start is cut,
 * the end that leads into the response stays) or its first max_prompt tokens otherwise;
 * a response longer than max_response keeps its first max_response tokens. response may
 * be NULL (with n_response NULL). Returns DATA_CUT_PROMPT | DATA_CUT_RESPONSE bits for
 * what was cut. */
int data_truncate(int *prompt, int *n_prompt, int max_prompt, bool cut_left, int *response,
                  int *n_response, int max_response);

#endif
