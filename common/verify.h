/*
 * common/verify.h — verifiers: checks of a response that read nothing but the prompt
 * text and the response text (RLVR, "reinforcement learning with verifiable rewards",
 * Tülu 3 / DeepSeek-R1). They are the same kind of rule a user could write by hand:
 * the prompt is recognised by its wording ("What is 7 plus 5?", "Count from 3 to 6.",
 * "Repeat the word moon twice."), the expected answer is computed from the numbers and
 * words in the prompt itself, and the response is checked against it.
 *
 * By construction this file knows no task world, no task generator and no gold judge:
 * it includes none of their headers, takes only strings, and tests/t_verify.sh checks
 * that its object file calls no task_ or judge_ function. So a verifier cannot leak the
 * evaluation-only gold judge into training.
 *
 * Kinds (verify_parse recognises them; VERIFY_NONE for anything else):
 *   arith   "what is A plus|+|minus|-|− B", "add A and|to B", "subtract B from A",
 *           "A plus B" anywhere; operands are digits or number words (zero..ninety-nine)
 *   count   "count from A to B", "(list|say|write) the numbers from A to B", "count to B"
 *   repeat  "(repeat|say|write) [the word] W once|twice|thrice|N times"
 * Scores are 1 or 0 (a verifier passes or fails; no partial credit):
 *   arith   1 if the response states the result and no number other than A, B and the
 *           result (a hedge "12 or 13", an extra or a fractional number fails)
 *   count   1 if the numbers in the response are exactly A, A+1, ..., B in order
 *   repeat  1 if W occurs exactly N times as a whole word (any case)
 * Text is compared as lower-case words: runs of ASCII letters, digits and apostrophes
 * (’ folds to '); "+", "-" and "−" (U+2212) are words of their own; any other byte
 * separates. "twenty one" and "twenty-one" are 21; "7.0" is 7; "7.5" and numbers above
 * 10^8 are numbers that are never right (and no operand). Pure functions, thread-safe,
 * no allocation.
 */
#ifndef RLHF_VERIFY_H
#define RLHF_VERIFY_H

typedef enum {
    VERIFY_NONE = 0,
    VERIFY_ARITH,
    VERIFY_COUNT,
    VERIFY_REPEAT,
    VERIFY_N_KIND
} VerifyKind;

#define VERIFY_WORD_LEN 32

/* What a recognised prompt asks. */
typedef struct {
    VerifyKind kind;
    int a, b;         /* arith: operands as the result needs them (a op b) */
    char op;          /* arith: '+' or '-' */
    int result;       /* arith: a op b */
    int from, to;     /* count */
    int times;        /* repeat */
    char word[VERIFY_WORD_LEN]; /* repeat, lower case */
} VerifyQuery;

/* "none", "arith", "count", "repeat" */
const char *verify_kind_name(VerifyKind k);
/* VERIFY_NONE for "none"; -1 for a name that is no kind */
int verify_kind_from_name(const char *name);
/* Recognise the prompt (with or without a "User: ...\nAssistant:" frame). Returns its
 * kind (VERIFY_NONE when no rule matches; q is then zeroed except kind). */
VerifyKind verify_parse(const char *prompt, VerifyQuery *q);
/* 1 or 0 for a response to a recognised query; 0 when q->kind is VERIFY_NONE. */
double verify_score(const VerifyQuery *q, const char *response);

#endif
