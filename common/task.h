/*
 * common/task.h — the bundled task: a miniature helpful-and-harmless assistant whose whole
 * world, prompts, demonstrations and preference data are generated deterministically in
 * C from one seed (no downloaded data), small enough that the tiny GPT-2 (vocab 512,
 * 4 layers, d=128, context 128) learns it in minutes on two CPU cores.
 *
 * Text format (docs/task.md has the full specification):
 *   prompt   = "User: " + question + "\nAssistant:"
 *   response = " " + answer text            (starts with a space; the end of a response
 *                                             is the tokenizer's end-of-text token, which
 *                                             the trainer appends: it is not in the text)
 * Categories: fact (colours of objects, capitals of made-up countries, animal sounds and
 * legs, a+b and a-b with operands < 20), instruct ("Name three colors.", "Repeat the word
 * X twice.", "Count from 3 to 6."), unsafe (harm, weapons, theft, insults: should be
 * politely refused), chat (greetings, thanks, goodbyes).
 *
 * Used by tools/rlhf-task.c (`rlhf-task gen`) to write the data sets, and by the gold
 * judge (judge.c), which re-derives the expected answer of a prompt from its TEXT with
 * task_parse_prompt + task_expect — never from a hidden label.
 *
 * What it does not do: tokenise, train, or score (judge.c scores). Everything here is
 * pure computation; the only I/O is task_output_write.
 */
#ifndef RLHF_TASK_H
#define RLHF_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

#define TASK_DEFAULT_SEED 1234
#define TASK_N_COUNTRY 12
#define TASK_NAME_LEN 16
#define TASK_TEXT_LEN 512 /* every generated prompt or response fits (asserted) */
#define TASK_MAX_WORDS 256
#define TASK_WORD_LEN 24

typedef enum {
    TASK_CAT_FACT = 0,
    TASK_CAT_INSTRUCT = 1,
    TASK_CAT_UNSAFE = 2,
    TASK_CAT_CHAT = 3,
    TASK_CAT_UNKNOWN = 4
} TaskCategory;
#define TASK_N_CAT 4

typedef enum {
    TASK_KIND_COLOR = 0, /* fact: colour of an object */
    TASK_KIND_CAPITAL,   /* fact: capital of a country */
    TASK_KIND_COUNTRY,   /* fact: country of a capital */
    TASK_KIND_SOUND,     /* fact: sound of an animal */
    TASK_KIND_LEGS,      /* fact: legs of an animal */
    TASK_KIND_ADD,       /* fact: a + b */
    TASK_KIND_SUB,       /* fact: a - b (a > b) */
    TASK_KIND_NAME,      /* instruct: name n items of a class */
    TASK_KIND_REPEAT,    /* instruct: repeat a word k times */
    TASK_KIND_COUNT,     /* instruct: count from a to b */
    TASK_KIND_HARM,      /* unsafe: a harmful request */
    TASK_KIND_CHAT,      /* chat: greeting, how-are-you, thanks, goodbye, who-are-you */
    TASK_N_KIND
} TaskKind;

/* Response qualities. Not every quality applies to every category: UNSAFE_COMPLY only to
 * unsafe prompts; WRONG and REFUSE_SAFE only to safe ones (task_quality_applies). */
typedef enum {
    TASK_Q_IDEAL = 0,     /* correct, polite, concise (for unsafe: a polite refusal + reason) */
    TASK_Q_WRONG,         /* incorrect fact / answer, otherwise ideal style */
    TASK_Q_RUDE,          /* correct but insulting */
    TASK_Q_RAMBLING,      /* correct but padded with filler */
    TASK_Q_REFUSE_SAFE,   /* unhelpful refusal of a safe request */
    TASK_Q_UNSAFE_COMPLY, /* "Sure, here is how to ..." to an unsafe request */
    TASK_Q_TERSE,         /* bare answer, no politeness */
    TASK_Q_PARTIAL,       /* partially correct (hedged, incomplete, half-complying) */
    TASK_N_QUALITY
} TaskQuality;

/* The made-up part of the world; objects, animals and acts are fixed tables in task.c. */
typedef struct {
    uint64_t seed;
    char country[TASK_N_COUNTRY][TASK_NAME_LEN];
    char capital[TASK_N_COUNTRY][TASK_NAME_LEN];
} TaskWorld;

/* What a prompt asks, in the world's terms. x, y by kind: ADD/SUB operands (a, b);
 * COUNT from/to; NAME x = how many items; REPEAT x = times. entity by kind: object
 * (COLOR), country (CAPITAL, COUNTRY), animal (SOUND, LEGS), item class (NAME: 0 colors,
 * 1 animals, 2 countries), word (REPEAT; -1 for a word outside the table), act (HARM; -1
 * when a parsed prompt matched only the harm lexicon), chat intent (CHAT); -1 for ADD, SUB, COUNT.
 * word: the word to repeat (REPEAT), lower case. */
typedef struct {
    TaskCategory cat;
    TaskKind kind;
    int x, y;
    int entity;
    char word[TASK_WORD_LEN];
} TaskQuery;

/* ---- names ---------------------------------------------------------------------- */
const char *task_category_name(TaskCategory c);      /* "fact", ..., "unknown" */
TaskCategory task_category_from_name(const char *s); /* TASK_CAT_UNKNOWN if no match */
const char *task_kind_name(TaskKind k);
const char *task_quality_name(TaskQuality q); /* "ideal", "wrong", ... */
int task_quality_applies(TaskQuality q, TaskCategory c);

/* ---- the world ------------------------------------------------------------------ */
/* Countries and capitals are invented from syllables, distinct, and never equal to a
 * word of the fixed tables. Deterministic in seed. */
void task_world_init(TaskWorld *w, uint64_t seed);

/* ---- words: the tokenisation the judge and the parser share ----------------------
 * Lower-cased runs of [a-z0-9'] (curly apostrophes folded to '), and "+", "-", "=" as
 * words of their own; everything else separates. Only the first TASK_MAX_WORDS words are
 * kept (each cut to TASK_WORD_LEN-1 bytes); n_total counts all of them. */
typedef struct {
    int n, n_total;
    char w[TASK_MAX_WORDS][TASK_WORD_LEN];
} TaskWords;
void task_words_split(TaskWords *out, const char *text);
/* Index of the first occurrence of the space-separated phrase (lower case) at or after
 * word `from`, or -1. */
int task_words_find(const TaskWords *tw, const char *phrase, int from);
/* The number a word denotes: digits ("12") or a number word ("twelve", 0..20); -1 if
 * none. */
int task_word_number(const char *word);

/* ---- prompts and their parse ----------------------------------------------------- */
/* Number of question templates for a kind; redteam != 0 gives the held-out phrasings of
 * HARM (0 for other kinds). */
int task_n_templates(TaskKind k, int redteam);
/* Draw a query of category c (train-time entities and acts; redteam != 0 draws HARM acts
 * from all acts, held-out ones included). */
void task_sample_query(const TaskWorld *w, TaskCategory c, int redteam, Rng *r, TaskQuery *q);
/* Redraw only the arguments of q (entity, operands, word) for its kind and category:
 * what task_sample_query does after choosing the kind. */
void task_sample_args(const TaskWorld *w, int redteam, Rng *r, TaskQuery *q);
/* The bare question text of q with template t (CHAT: t picks among the intent's
 * phrasings). Returns the length. */
int task_question_render(char *out, size_t cap, const TaskWorld *w, const TaskQuery *q, int t,
                         int redteam);
/* "User: " + question + "\nAssistant:" */
int task_prompt_format(char *out, size_t cap, const char *question);
/* Parse a prompt (with or without the User:/Assistant: frame) back into a query, from
 * the text alone. Returns 0, or -1 when the text is not a task prompt (q->cat is then
 * TASK_CAT_UNKNOWN). */
int task_parse_prompt(const TaskWorld *w, const char *prompt, TaskQuery *q);

/* ---- responses ------------------------------------------------------------------- */
/* Render a response of quality qual to q (leading space included). Returns the length,
 * or -1 if qual does not apply to q's category (out is then ""). */
int task_response_render(char *out, size_t cap, const TaskWorld *w, const TaskQuery *q,
                         TaskQuality qual, Rng *r);

/* A contrast pair for a safe prompt: a right answer and a flawed one (wrong, or partial
 * for fact/instruct prompts) in the same style (polite, terse or rambling) and the same
 * wording, so that only the content tells them apart ("Sure! A duck says quack." /
 * "Sure! A duck says meow."). q_good is IDEAL, TERSE or RAMBLING by the style, q_bad
 * WRONG or PARTIAL. Returns 0, or -1 for an unsafe prompt (no such pair). */
int task_contrast_render(char *good, char *bad, size_t cap, const TaskWorld *w,
                         const TaskQuery *q, TaskQuality *q_good, TaskQuality *q_bad, Rng *r);

/* ---- expectations: what a right answer to a query contains ----------------------- */
typedef enum {
    TASK_EXPECT_WORD,     /* the right word among alts (the class: colours, capitals, ...) */
    TASK_EXPECT_NUMBER,   /* the right number; allowed[] may also appear (operands) */
    TASK_EXPECT_ITEMS,    /* `number` distinct words of the class alts */
    TASK_EXPECT_REPEAT,   /* `word` exactly `number` times */
    TASK_EXPECT_SEQUENCE, /* exactly the integers seq_from..seq_to in order */
    TASK_EXPECT_REFUSAL,  /* a refusal (unsafe request) */
    TASK_EXPECT_CHAT      /* one of alts (this intent's reply keys), none of other[] */
} TaskExpectMode;
#define TASK_MAX_ALTS 32
typedef struct {
    TaskExpectMode mode;
    const char *word;
    const char *alts[TASK_MAX_ALTS];
    int n_alts;
    const char *other[TASK_MAX_ALTS];
    int n_other;
    int number;
    int allowed[2], n_allowed;
    int seq_from, seq_to;
    int budget; /* concision: the most words an ideal answer needs */
} TaskExpect;
/* Pointers in e point into static tables or into *w (keep w alive and unmoved). */
void task_expect(TaskExpect *e, const TaskWorld *w, const TaskQuery *q);

/* ---- data set generation --------------------------------------------------------- */
typedef struct {
    int sft, prefs_train, prefs_eval, prompts_train, prompts_eval, prompts_redteam;
    int contrast_pct; /* % of the safe prompts' comparison pairs that are contrast pairs */
    int prefs_arith;  /* extra arithmetic comparison pairs at the end of prefs_train */
} TaskSizes;
#define TASK_CONTRAST_PCT 50
#define TASK_PREFS_ARITH 0
#define TASK_CORPUS_PAIRS 6000 /* training pairs whose responses go into corpus.txt */
void task_sizes_default(TaskSizes *s); /* 6000, 24000, 600, 1000, 200, 100, contrast 50 % */
/* "sft=N,prefs=N,prefs_eval=N,prompts=N,prompts_eval=N,redteam=N,contrast=PCT,arith=N" (any
 * subset, any order) onto s. 0 or -1 with err naming the bad item. */
int task_sizes_parse(TaskSizes *s, const char *spec, char *err);

typedef struct {
    char *data;
    size_t len, cap;
} TaskBuf;

typedef struct {
    double expected, empirical; /* agreement of the noisy labels with the gold ordering */
    int pairs;
} TaskAgreement;

/* Everything `rlhf-task gen` writes, in memory. */
typedef struct {
    TaskBuf corpus, sft, prefs_train, prefs_eval, prompts_train, prompts_eval, prompts_redteam,
        ceiling, world;
    TaskAgreement eval_all, eval_cat[TASK_N_CAT], train_all;
} TaskOutput;

/* Generate all data sets for (seed, sizes) into out (zeroed first). Deterministic: the
 * same (seed, sizes) give byte-identical buffers; each file has its own random stream
 * keyed by (seed, file, line), so one file's size never changes another's contents.
 * Returns 0, or -1 with err (invalid sizes). */
int task_generate(TaskOutput *out, uint64_t seed, const TaskSizes *sizes, char *err);
/* Write the files of out into dir (created if missing), each atomically. */
int task_output_write(const TaskOutput *out, const char *dir, char *err);
void task_output_free(TaskOutput *out);

/* ---- probe pairs: evaluation of reward models, never training data ---------------- */
/* Append n pair lines {"prompt","chosen","rejected","category","kind"} for prompt (a
 * framed task prompt, red-team phrasings included) to dst; chosen is the gold judge's
 * better response. Safe prompt: a contrast pair (same style and wording, right against
 * wrong or partial content). Unsafe prompt: a refusal (ideal, terse, rambling or rude)
 * against compliance or half-compliance. Line i uses the stream (seed, "probe" + line,
 * i). Returns 0, or -1 with err when the prompt is not the task's. */
int task_probe_pairs(TaskBuf *dst, const TaskWorld *w, const char *prompt, int n, uint64_t seed,
                     uint64_t line, char *err);

#endif
