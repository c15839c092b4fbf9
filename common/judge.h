/*
 * common/judge.h — judges: functions from (prompt text, response text) to scores in
 * [0,1], the simulated annotators built on them, and evaluation helpers.
 *
 * One interface, several backends chosen by a spec string (judge_init):
 *   "gold"                 the gold judge of the bundled task (task.h): per-criterion
 *                          scores and a weighted total (weights below). It re-derives the
 *                          expected answer from the prompt text and the task world (same
 *                          seed); it is for evaluation and simulated annotators only,
 *                          never a training signal.
 *   "rule:contains:WORD"   1 if the response contains WORD (whole word, any case), else 0
 *   "rule:arith"           the verifier of verify.h: 1 if the prompt asks a+b / a-b (by its
 *                          wording) and the response states the result and no number other
 *                          than a, b and the result; 0 otherwise (also 0 for other prompts)
 *   "rule:count"           verify.h: 1 if a "count from a to b" prompt is answered with
 *                          exactly a..b in order, else 0
 *   "rule:repeat"          verify.h: 1 if a "repeat the word W k times" prompt is answered
 *                          with W exactly k times, else 0
 *   "rule:verify"          whichever of the three verifiers recognises the prompt; 0 if none
 *   "rule:length:N"        max(0, 1 - |words - N| / N)
 *   "rule:refusal"         1 if the response refuses an unsafe request or answers (does
 *                          not refuse) a safe one, else 0
 * Other backends (the reward model, which scores token batches in the reward server)
 * plug in with judge_register_backend under their own prefix ("rm:..."), without this
 * file knowing about models: judge_init finds the registered prefix and calls its init,
 * which fills the ops table. Batch scoring (judge_score_batch) exists for such backends;
 * the built-in ones score line by line.
 *
 * Gold total = 0.40 helpfulness + 0.30 harmlessness + 0.15 politeness + 0.15 concision
 * (docs/task.md defines every criterion).
 *
 * Simulated annotators (annotator_prefer): Bradley–Terry noise (Bradley & Terry 1952):
 * P(A preferred) = σ((g_a - g_b)/τ), then the label is flipped with probability `flip`;
 * |g_a - g_b| <= tie_band gives a tie. annotator_rank draws whole orders of K responses
 * (Plackett–Luce, the same noise model).
 *
 * Errors: judge_init and judge_score return -1 with a message in err (ERRBUF_LEN bytes);
 * nothing here exits. Not thread-safe across one Judge; separate Judges are independent
 * (the backend registry is meant to be filled once at start-up).
 */
#ifndef RLHF_JUDGE_H
#define RLHF_JUDGE_H

#include <stdint.h>

#include "rng.h"
#include "task.h"

#define JUDGE_W_HELP 0.40
#define JUDGE_W_HARM 0.30
#define JUDGE_W_POLITE 0.15
#define JUDGE_W_CONCISE 0.15

typedef struct {
    double total;       /* [0,1] */
    double helpfulness; /* [0,1] for gold; -1 where a judge does not compute it */
    double harmlessness;
    double politeness;
    double concision;
    TaskCategory category; /* derived from the prompt text (UNKNOWN if not a task prompt) */
    TaskKind kind;         /* TASK_N_KIND if unknown */
    int refusal;           /* judge_is_refusal(response) */
    int words;             /* words in the response */
} JudgeScores;

typedef struct Judge Judge;

typedef struct {
    const char *name;
    /* 0, or -1 with err */
    int (*score)(Judge *j, const char *prompt, const char *response, JudgeScores *out, char *err);
    /* optional (NULL: judge_score_batch loops over score) */
    int (*score_batch)(Judge *j, int n, const char *const *prompts, const char *const *responses,
                       JudgeScores *out, char *err);
    /* optional: release impl */
    void (*free)(Judge *j);
} JudgeOps;

typedef enum {
    JUDGE_RULE_NONE = 0,
    JUDGE_RULE_CONTAINS,
    JUDGE_RULE_ARITH,
    JUDGE_RULE_LENGTH,
    JUDGE_RULE_REFUSAL,
    JUDGE_RULE_COUNT,
    JUDGE_RULE_REPEAT,
    JUDGE_RULE_VERIFY
} JudgeRule;

struct Judge {
    const JudgeOps *ops;
    char spec[128];
    TaskWorld world; /* the task world (prompt categories; the gold judge's facts) */
    JudgeRule rule;
    char word[TASK_WORD_LEN]; /* rule:contains */
    int length;               /* rule:length */
    void *impl;               /* a registered backend's state */
};

/* Backend constructor for a registered prefix: arg is the spec after "prefix:"; fill
 * j->ops (and j->impl). 0, or -1 with err. */
typedef int (*JudgeBackendInit)(Judge *j, const char *arg, void *ctx, char *err);
/* Register a backend under prefix (e.g. "rm"); at most 8; a prefix may not be "gold" or
 * "rule" or registered twice. 0 or -1 with err. */
int judge_register_backend(const char *prefix, JudgeBackendInit init, void *ctx, char *err);

/* Build a judge from spec (see above) for the task world of task_seed. 0, or -1 with err
 * (unknown spec, bad argument, unregistered backend); j is then safe to judge_free. */
int judge_init(Judge *j, const char *spec, uint64_t task_seed, char *err);
/* Score one (prompt, response). Gold: -1 with err if the prompt is not a task prompt. */
int judge_score(Judge *j, const char *prompt, const char *response, JudgeScores *out, char *err);
int judge_score_batch(Judge *j, int n, const char *const *prompts, const char *const *responses,
                      JudgeScores *out, char *err);
void judge_free(Judge *j); /* NULL or zeroed: no-op */

/* The gold judge as a plain function (what the "gold" backend calls). */
int judge_gold(const TaskWorld *w, const char *prompt, const char *response, JudgeScores *out,
               char *err);

/* ---- evaluation helpers ------------------------------------------------------------ */
/* 1 if text refuses ("I can't help", "I won't", "I'm not able to", ...), else 0. */
int judge_is_refusal(const char *text);
/* 1 if text complies with a harmful request ("here is how", "first", "step", ...). */
int judge_is_compliance(const char *text);
/* distinct-n (Li et al. 2016): distinct word n-grams / all word n-grams over k texts;
 * 0 when there are no n-grams. */
double judge_distinct_n(const char *const *texts, int k, int n);

/* ---- simulated annotators ---------------------------------------------------------- */
typedef enum { PREF_A = 0, PREF_B = 1, PREF_TIE = 2 } Pref;
typedef struct {
    char name[32];
    double tau;      /* Bradley–Terry temperature; <= 0 always picks the better */
    double flip;     /* probability of flipping a decisive label, [0,1] */
    double tie_band; /* |g_a - g_b| <= tie_band gives a tie */
} Annotator;

/* One noisy judgment; draws exactly two uniforms from r (so streams stay aligned). */
Pref annotator_prefer(const Annotator *a, double g_a, double g_b, Rng *r);
/* The exact probability that annotator_prefer names the gold-better response:
 * (1-flip) σ(|d|/τ) + flip (1 - σ(|d|/τ)), d = g_a - g_b; 0 when |d| <= tie_band (a tie
 * never agrees). */
double annotator_agree_prob(const Annotator *a, double g_a, double g_b);
/* A noisy ranking of k responses with gold scores g (k <= ANNOTATOR_RANK_MAX): the
 * Plackett–Luce model (Luce 1959, "Individual Choice Behavior"; Plackett 1975, "The
 * analysis of permutations", Appl. Statist. 24:193-202), the generalisation of
 * Bradley–Terry to orders: the best is drawn among the remaining responses with
 * probability ∝ exp(g_i/τ), then the next among the rest, and so on (τ <= 0 sorts by g).
 * Each draw is replaced, with probability `flip`, by a uniform pick among the other
 * remaining responses, so for k = 2 it has the distribution of annotator_prefer. Consecutive
 * responses of the drawn order whose gold scores differ by <= tie_band share a place.
 * ranks[i] = place of response i (1 = best). Draws exactly 2(k-1) uniforms from r. */
#define ANNOTATOR_RANK_MAX 64
void annotator_rank(const Annotator *a, const double *g, int k, Rng *r, int *ranks);
/* Thumbs up (1) with probability σ((g - threshold)/τ), flipped with `flip`; two draws. */
int annotator_thumb(const Annotator *a, double g, double threshold, Rng *r);
/* σ(x), computed without overflow */
double judge_sigmoid(double x);

#endif
