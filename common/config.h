/*
 * common/config.h — the typed, validated configuration of an rlhf-c run.
 *
 * Every key is declared once, in config_keys.h; from that list come the struct below
 * (fields are cfg.<section>.<name>, e.g. cfg.optim.lr, cfg.ppo.epochs, cfg.run.seed), the
 * INI parser, range checks, the dumper and the help text. A run's configuration is:
 *
 *   defaults  <-  the INI file  <-  command-line overrides "section.key=value" (win)
 *
 * then config_validate (cross-key rules). config_to_text writes the complete effective
 * configuration as INI text (every key, sections in list order) — checkpoints store it,
 * and config_from_text reads it back to an equal struct; config_diff lists the keys in
 * which two configurations differ (for a resumed run).
 *
 * INI syntax: `[section]` lines; `key = value`; `#` or `;` start a comment at the start
 * of a line or after whitespace; values may be double-quoted ("a b", escapes \" \\ \n \t
 * \r); blank lines ignored; a section may appear more than once, a key only once per file.
 *
 * Errors are recoverable: functions return -1 and write one line into err (ERRBUF_LEN
 * bytes) naming the source (file:line or the override), the key and what to do: unknown
 * section or key (with the closest valid key: "did you mean 'optim.lr'?"), a value of
 * the wrong type ("optim.lr = abc: expected a number"), out of range, duplicate key,
 * malformed line. On error the struct may be partly updated; do not use it.
 *
 * RlhfConfig is plain data (fixed-size strings): copy it with `=`, no free needed.
 * Not here: what a key means to the stage using it (see docs/config.md and the stage).
 */
#ifndef RLHF_CONFIG_H
#define RLHF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config_keys.h"
#include "gpt.h"

#define CONFIG_STR_MAX 1024 /* strings (paths) hold at most CONFIG_STR_MAX-1 bytes */
#define CONFIG_ENUM_MAX 32

typedef char ConfigStr[CONFIG_STR_MAX];
typedef char ConfigEnum[CONFIG_ENUM_MAX];

#define CONFIG_CTYPE_INT int
#define CONFIG_CTYPE_FLOAT double
#define CONFIG_CTYPE_BOOL bool
#define CONFIG_CTYPE_STR ConfigStr
#define CONFIG_CTYPE_ENUM ConfigEnum

#define CONFIG_FIELD_(sec, name, type, def, lo, hi, help) CONFIG_CTYPE_##type name;
#define CONFIG_SECTION_STRUCT_(sec)                                                                \
    struct config_##sec {                                                                          \
        RLHF_CONFIG_KEYS_##sec(CONFIG_FIELD_)                                                      \
    } sec;

/* cfg.run.seed, cfg.optim.lr, ...; each section is also a named type (struct
 * config_optim) so a module can take just its section. */
typedef struct {
    RLHF_CONFIG_SECTIONS(CONFIG_SECTION_STRUCT_)
} RlhfConfig;

typedef enum { CONFIG_INT, CONFIG_FLOAT, CONFIG_BOOL, CONFIG_STR, CONFIG_ENUM } ConfigType;

/* One row of the key table (generated from config_keys.h). */
typedef struct {
    const char *section, *name, *key; /* key = "section.name" */
    ConfigType type;
    size_t offset;                 /* of the field in RlhfConfig */
    long long def_i, min_i, max_i; /* INT, BOOL */
    double def_f, min_f, max_f;    /* FLOAT */
    const char *def_s;             /* STR, ENUM */
    const char *choices;           /* ENUM: "a|b|c" */
    const char *help;
} ConfigKey;

extern const ConfigKey config_keys[];
extern const int config_num_keys;
extern const char *const config_sections[];
extern const int config_num_sections;

/* The key "section.name", or NULL. */
const ConfigKey *config_find_key(const char *key);

/* Every key to its default. */
void config_defaults(RlhfConfig *c);

/* Apply INI text on top of c; source names it in messages ("cfg.ini" -> "cfg.ini:7: ...").
 * 0, or -1 with err. */
int config_parse_text(RlhfConfig *c, const char *text, const char *source, char *err);
/* Apply an INI file on top of c. 0, or -1 with err (also for an unreadable file). */
int config_parse_file(RlhfConfig *c, const char *path, char *err);
/* Set one key from its text value ("section.name", "3e-4"), with type and range checks. */
int config_set(RlhfConfig *c, const char *key, const char *value, char *err);
/* Apply one override "section.key=value" (a leading "--" is accepted). */
int config_override(RlhfConfig *c, const char *arg, char *err);
/* Cross-key rules (min_lr <= lr, micro batch <= batch, custom model sizes, sequence
 * lengths fit the model, ...). 0, or -1 with err naming the keys. */
int config_validate(const RlhfConfig *c, char *err);
/* The usual entry point: defaults, then path (NULL = none), then the n overrides in
 * order, then config_validate. 0, or -1 with err. */
int config_load(RlhfConfig *c, const char *path, int n, char *const *overrides, char *err);

/* The complete effective configuration as INI text (malloc'd, caller frees). Floats are
 * written in the shortest form that reads back to the same double. */
char *config_to_text(const RlhfConfig *c);
/* Defaults, then text (as written by config_to_text, e.g. from a checkpoint), then
 * config_validate. source names it in messages. 0, or -1 with err. */
int config_from_text(RlhfConfig *c, const char *text, const char *source, char *err);

/* The value of one key as it would appear in INI text (strings quoted). */
void config_value_text(const RlhfConfig *c, const ConfigKey *k, char *buf, size_t cap);

/* Keys whose values differ between a and b: returns their number and, if buf is not
 * NULL, writes one line per key "section.key: <a> -> <b>\n" (truncated to cap bytes). */
int config_diff(const RlhfConfig *a, const RlhfConfig *b, char *buf, size_t cap);

/* The model architecture the config asks for: the preset's sizes, replaced by each
 * non-zero model.* size; vocab_size 0 takes tokenizer_vocab (pass 0 if unknown: then
 * out->vocab_size stays 0). head = GPT_HEAD_LM. 0, or -1 with err. */
int config_model(const RlhfConfig *c, int tokenizer_vocab, GPTConfig *out, char *err);

/* Help: every key with its type, default, range or choices and its meaning. */
void config_print_help(FILE *f);
/* The same as a Markdown reference (docs/config.md is this output). */
void config_write_markdown(FILE *f);

#endif
