/*
 * common/constitution.h — the principles of Constitutional AI (Bai et al. 2022): a
 * JSONL file, one principle per line, read and validated with file:line errors.
 *
 * A line is a JSON object with exactly these string fields (non-empty, valid UTF-8):
 *   "name"        a short identifier, unique in the file (e.g. "harmful-illegal")
 *   "critique"    the critique request: asked after the model's response, it makes the
 *                 model point out what is wrong with it under this principle (SL-CAI)
 *   "revision"    the revision request: asked after the critique, it makes the model
 *                 rewrite its response (SL-CAI)
 *   "comparison"  the question of the feedback model's multiple-choice comparison of two
 *                 responses, e.g. "Which of these responses is less harmful?" (RL-CAI)
 * Blank lines and lines whose first non-blank character is '#' are ignored. Any other
 * field is an error (it catches misspellings such as "critque"). A file needs at least
 * one principle, at most CONSTITUTION_MAX.
 *
 * Sampling: constitution_pick draws a principle from (seed, key1, key2) with
 * rng_init_keyed, so a (prompt, round) gets the same principle on every run and in any
 * order of processing.
 *
 * Ownership: constitution_free releases what parse/load allocated (no-op on a zeroed one).
 */
#ifndef RLHF_CONSTITUTION_H
#define RLHF_CONSTITUTION_H

#include <stddef.h>
#include <stdint.h>

#define CONSTITUTION_MAX 4096
#define CONSTITUTION_MAX_FIELD 4096 /* bytes per field */

typedef struct {
    char *name, *critique, *revision, *comparison;
    int line; /* line of the file it came from */
} Principle;

typedef struct {
    Principle *p;
    int n;
} Constitution;

/* Parse len bytes of text (need not be NUL-terminated); path names the source in errors
 * ("path:line: what is wrong"). 0, or -1 with err and c left empty. */
int constitution_parse(Constitution *c, const char *text, size_t len, const char *path, char *err);
/* Read and parse the file at path. */
int constitution_load(Constitution *c, const char *path, char *err);
void constitution_free(Constitution *c);

/* Index of the principle for (seed, key1, key2), uniform over the n principles. */
int constitution_pick(const Constitution *c, uint64_t seed, uint64_t key1, uint64_t key2);

#endif
