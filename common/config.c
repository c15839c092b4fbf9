/*
 * common/config.c — the configuration parser, checks, dumper and help of rlhf-c.
 *
 * Everything here is driven by the key table generated from config_keys.h, so adding a
 * key never touches this file (unless it takes part in a cross-key rule, which lives in
 * config_validate). Parsing is line by line over a NUL-terminated text; nothing is kept
 * from the text after a call. See config.h for the syntax and the error contract.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

// ----------------------------------------------------------------------------
// the key table

#define CONFIG_ROW_INT(def, lo, hi) .def_i = (def), .min_i = (lo), .max_i = (hi)
#define CONFIG_ROW_FLOAT(def, lo, hi) .def_f = (def), .min_f = (lo), .max_f = (hi)
#define CONFIG_ROW_BOOL(def, lo, hi) .def_i = (def), .min_i = 0, .max_i = 1
#define CONFIG_ROW_STR(def, lo, hi) .def_s = (def)
#define CONFIG_ROW_ENUM(def, lo, hi) .def_s = (def), .choices = (lo)
#define CONFIG_ROW_(sec, nm, ty, def, lo, hi, hlp)                                                 \
    {.section = #sec,                                                                              \
     .name = #nm,                                                                                  \
     .key = #sec "." #nm,                                                                          \
     .type = CONFIG_##ty,                                                                          \
     .offset = offsetof(RlhfConfig, sec.nm),                                                       \
     CONFIG_ROW_##ty(def, lo, hi),                                                                 \
     .help = hlp},
#define CONFIG_SECTION_ROWS_(sec) RLHF_CONFIG_KEYS_##sec(CONFIG_ROW_)
#define CONFIG_SECTION_NAME_(sec) #sec,

const ConfigKey config_keys[] = {RLHF_CONFIG_SECTIONS(CONFIG_SECTION_ROWS_)};
const int config_num_keys = (int)(sizeof config_keys / sizeof config_keys[0]);
const char *const config_sections[] = {RLHF_CONFIG_SECTIONS(CONFIG_SECTION_NAME_)};
const int config_num_sections = (int)(sizeof config_sections / sizeof config_sections[0]);

static void *field(RlhfConfig *c, const ConfigKey *k) { return (char *)c + k->offset; }
static const void *cfield(const RlhfConfig *c, const ConfigKey *k) {
    return (const char *)c + k->offset;
}
static size_t str_cap(const ConfigKey *k) {
    return k->type == CONFIG_ENUM ? CONFIG_ENUM_MAX : CONFIG_STR_MAX;
}

const ConfigKey *config_find_key(const char *key) {
    for (int i = 0; i < config_num_keys; i++)
        if (strcmp(config_keys[i].key, key) == 0) return &config_keys[i];
    return NULL;
}

static int find_section(const char *name) {
    for (int i = 0; i < config_num_sections; i++)
        if (strcmp(config_sections[i], name) == 0) return i;
    return -1;
}

void config_defaults(RlhfConfig *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < config_num_keys; i++) {
        const ConfigKey *k = &config_keys[i];
        void *p = field(c, k);
        switch (k->type) {
        case CONFIG_INT: *(int *)p = (int)k->def_i; break;
        case CONFIG_FLOAT: *(double *)p = k->def_f; break;
        case CONFIG_BOOL: *(bool *)p = k->def_i != 0; break;
        case CONFIG_STR:
        case CONFIG_ENUM: snprintf(p, str_cap(k), "%s", k->def_s); break;
        }
    }
}

// ----------------------------------------------------------------------------
// closest-key suggestions (Levenshtein distance)

static int levenshtein(const char *a, const char *b) {
    enum { MAXL = 96 };
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > MAXL) la = MAXL;
    if (lb > MAXL) lb = MAXL;
    int row[MAXL + 1];
    for (int j = 0; j <= lb; j++) row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j];
            int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            int best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The key closest to section.name (section may be NULL or unknown): distance over the
 * dotted name, or over the bare name plus one (a key put in the wrong section). NULL if
 * nothing is close enough to be a plausible typo. */
static const ConfigKey *closest_key(const char *section, const char *name) {
    char full[256];
    snprintf(full, sizeof full, "%s.%s", section ? section : "", name);
    const ConfigKey *best = NULL;
    int best_d = 1 << 30;
    for (int i = 0; i < config_num_keys; i++) {
        const ConfigKey *k = &config_keys[i];
        int d = levenshtein(name, k->name) + 1;
        if (section) {
            int d2 = levenshtein(full, k->key);
            if (d2 < d) d = d2;
        }
        if (d < best_d) {
            best_d = d;
            best = k;
        }
    }
    int len = (int)strlen(name);
    int limit = len / 2 > 2 ? len / 2 : 2;
    return best_d <= limit ? best : NULL;
}

static const char *closest_section(const char *name) {
    const char *best = NULL;
    int best_d = 1 << 30;
    for (int i = 0; i < config_num_sections; i++) {
        int d = levenshtein(name, config_sections[i]);
        if (d < best_d) {
            best_d = d;
            best = config_sections[i];
        }
    }
    int len = (int)strlen(name);
    return best_d <= (len / 2 > 2 ? len / 2 : 2) ? best : NULL;
}

/* Keys that no longer exist, with what to do instead: an old config gets this, not a
 * spelling suggestion. */
static const struct {
    const char *key, *why;
} removed_keys[] = {
    {"ppo.vf_coef", "the critic has its own AdamW and its own gradient clipping, so a weight "
                    "on its loss changed nothing but where clipping set in; delete the line "
                    "(the critic's step size is ppo.vf_lr)"},
};

/* "unknown key ...; did you mean 'x.y'?" or a pointer to the help. */
static int unknown_key_error(char *err, const char *where, const char *section, const char *name) {
    const ConfigKey *s = closest_key(section, name);
    char shown[300];
    if (section)
        snprintf(shown, sizeof shown, "%s.%s", section, name);
    else
        snprintf(shown, sizeof shown, "%s", name);
    for (size_t i = 0; i < sizeof removed_keys / sizeof removed_keys[0]; i++)
        if (strcmp(shown, removed_keys[i].key) == 0)
            return errf(err, "%s: '%s' was removed: %s", where, shown, removed_keys[i].why);
    if (s) return errf(err, "%s: unknown key '%s'; did you mean '%s'?", where, shown, s->key);
    return errf(err,
                "%s: unknown key '%s'; every key is listed in docs/config.md (or by the "
                "program's --help-config)",
                where, shown);
}

// ----------------------------------------------------------------------------
// typed values

static int ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

static int choice_ok(const char *choices, const char *v) {
    size_t n = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* Shortest "%.Ng" that reads back to the same double; a ".0" is added to integral
 * values so floats look like floats. */
static void format_double(double v, char *buf, size_t cap) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (isfinite(v) && !strpbrk(buf, ".eE") && strlen(buf) + 3 <= cap) strcat(buf, ".0");
}

/* where: "cfg.ini:7" or "override 'a.b=c'"; value: unescaped text. */
static int set_value(RlhfConfig *c, const ConfigKey *k, const char *value, const char *where,
                     char *err) {
    void *p = field(c, k);
    switch (k->type) {
    case CONFIG_INT: {
        const char *s = value;
        if (*s == '+' || *s == '-') s++;
        int digits = 0;
        while (isdigit((unsigned char)*s)) s++, digits++;
        if (!digits || *s)
            return errf(err, "%s: %s = %s: expected an integer", where, k->key, value);
        errno = 0;
        long long v = strtoll(value, NULL, 10);
        if (errno == ERANGE || v < k->min_i || v > k->max_i)
            return errf(err, "%s: %s = %s: out of range, expected %lld..%lld", where, k->key, value,
                        k->min_i, k->max_i);
        *(int *)p = (int)v;
        return 0;
    }
    case CONFIG_FLOAT: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (end == value || *end)
            return errf(err, "%s: %s = %s: expected a number", where, k->key, value);
        if (!isfinite(v))
            return errf(err, "%s: %s = %s: expected a finite number", where, k->key, value);
        if (v < k->min_f || v > k->max_f) {
            char lo[40], hi[40];
            format_double(k->min_f, lo, sizeof lo);
            format_double(k->max_f, hi, sizeof hi);
            return errf(err, "%s: %s = %s: out of range, expected %s..%s", where, k->key, value, lo,
                        hi);
        }
        *(double *)p = v;
        return 0;
    }
    case CONFIG_BOOL: {
        if (ieq(value, "true") || ieq(value, "yes") || ieq(value, "on") || strcmp(value, "1") == 0)
            *(bool *)p = true;
        else if (ieq(value, "false") || ieq(value, "no") || ieq(value, "off") ||
                 strcmp(value, "0") == 0)
            *(bool *)p = false;
        else
            return errf(err, "%s: %s = %s: expected true or false", where, k->key, value);
        return 0;
    }
    case CONFIG_ENUM:
        if (!choice_ok(k->choices, value))
            return errf(err, "%s: %s = %s: expected one of %s", where, k->key, value, k->choices);
        snprintf(p, CONFIG_ENUM_MAX, "%s", value);
        return 0;
    case CONFIG_STR:
        if (strlen(value) >= CONFIG_STR_MAX)
            return errf(err, "%s: %s: value is %zu bytes, at most %d are allowed", where, k->key,
                        strlen(value), CONFIG_STR_MAX - 1);
        snprintf(p, CONFIG_STR_MAX, "%s", value);
        return 0;
    }
    return errf(err, "%s: %s: internal error: unknown type", where, k->key);
}

void config_value_text(const RlhfConfig *c, const ConfigKey *k, char *buf, size_t cap) {
    const void *p = cfield(c, k);
    switch (k->type) {
    case CONFIG_INT: snprintf(buf, cap, "%d", *(const int *)p); return;
    case CONFIG_FLOAT: format_double(*(const double *)p, buf, cap); return;
    case CONFIG_BOOL: snprintf(buf, cap, "%s", *(const bool *)p ? "true" : "false"); return;
    case CONFIG_ENUM: snprintf(buf, cap, "%s", (const char *)p); return;
    case CONFIG_STR: {
        size_t o = 0;
        const char *s = p;
        if (cap < 3) {
            if (cap) buf[0] = 0;
            return;
        }
        buf[o++] = '"';
        for (; *s && o + 4 < cap; s++) {
            char e = 0;
            switch (*s) {
            case '"': e = '"'; break;
            case '\\': e = '\\'; break;
            case '\n': e = 'n'; break;
            case '\t': e = 't'; break;
            case '\r': e = 'r'; break;
            }
            if (e) {
                buf[o++] = '\\';
                buf[o++] = e;
            } else {
                buf[o++] = *s;
            }
        }
        buf[o++] = '"';
        buf[o] = 0;
        return;
    }
    }
}

// ----------------------------------------------------------------------------
// INI parsing

/* Parse the value text v (leading blanks already skipped) into out (cap bytes): a
 * double-quoted string with escapes, or bare text. In a file (comments = 1) a '#' or ';'
 * at the start or after whitespace ends a bare value, and only a comment may follow a
 * closing quote. 0 or -1 with err. */
static int parse_value(const char *v, int comments, char *out, size_t cap, const char *where,
                       const char *key, char *err) {
    size_t o = 0;
    if (*v == '"') {
        const char *s = v + 1;
        for (;; s++) {
            if (*s == 0) return errf(err, "%s: %s: unterminated quoted string", where, key);
            if (*s == '"') break;
            char ch = *s;
            if (ch == '\\') {
                s++;
                switch (*s) {
                case '"': ch = '"'; break;
                case '\\': ch = '\\'; break;
                case 'n': ch = '\n'; break;
                case 't': ch = '\t'; break;
                case 'r': ch = '\r'; break;
                default:
                    return errf(err,
                                "%s: %s: unknown escape '\\%c' in quoted string (use \\\" \\\\ "
                                "\\n \\t \\r)",
                                where, key, *s ? *s : '0');
                }
            }
            if (o + 1 >= cap)
                return errf(err, "%s: %s: value longer than %zu bytes", where, key, cap - 1);
            out[o++] = ch;
        }
        s++;
        while (*s == ' ' || *s == '\t') s++;
        if (*s && !(comments && (*s == '#' || *s == ';')))
            return errf(err, "%s: %s: unexpected text after the closing quote: %s", where, key, s);
        out[o] = 0;
        return 0;
    }
    const char *end = v + strlen(v);
    if (comments) {
        for (const char *s = v; *s; s++) {
            if ((*s == '#' || *s == ';') && (s == v || s[-1] == ' ' || s[-1] == '\t')) {
                end = s;
                break;
            }
        }
    }
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    size_t n = (size_t)(end - v);
    if (n + 1 > cap) return errf(err, "%s: %s: value longer than %zu bytes", where, key, cap - 1);
    memcpy(out, v, n);
    out[n] = 0;
    return 0;
}

static int valid_name_char(char ch) {
    return isalnum((unsigned char)ch) || ch == '_' || ch == '-' || ch == '.';
}

int config_parse_text(RlhfConfig *c, const char *text, const char *source, char *err) {
    int rc = -1;
    int *set_at = xcalloc((size_t)config_num_keys, sizeof(int)); /* line a key was set on */
    char *line = NULL, *value = xmalloc(CONFIG_STR_MAX + 1);
    size_t line_cap = 0;
    const char *section = NULL; /* points into config_sections */
    int lineno = 0;
    const char *p = text;
    while (*p) {
        lineno++;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len + 1 > line_cap) {
            line_cap = len + 1;
            line = xrealloc(line, line_cap);
        }
        memcpy(line, p, len);
        line[len] = 0;
        p = nl ? nl + 1 : p + len;
        char where[300];
        snprintf(where, sizeof where, "%s:%d", source, lineno);

        /* trim */
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
        if (n == 0 || *s == '#' || *s == ';') continue;

        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close) {
                errf(err, "%s: malformed section header '%s': expected [name]", where, s);
                goto done;
            }
            char *after = close + 1;
            while (*after == ' ' || *after == '\t') after++;
            if (*after && *after != '#' && *after != ';') {
                errf(err, "%s: unexpected text after the section header: %s", where, after);
                goto done;
            }
            *close = 0;
            char *name = s + 1;
            while (*name == ' ' || *name == '\t') name++;
            size_t nl2 = strlen(name);
            while (nl2 > 0 && (name[nl2 - 1] == ' ' || name[nl2 - 1] == '\t')) name[--nl2] = 0;
            int si = find_section(name);
            if (si < 0) {
                const char *sug = closest_section(name);
                if (sug)
                    errf(err, "%s: unknown section [%s]; did you mean [%s]?", where, name, sug);
                else
                    errf(err,
                         "%s: unknown section [%s]; sections are [run] [model] "
                         "[tokenizer] [data] [optim] [rm] [gen] [ppo] [dpo] [grpo] "
                         "[judge] [lora] (see docs/config.md)",
                         where, name);
                goto done;
            }
            section = config_sections[si];
            continue;
        }

        char *eq = strchr(s, '=');
        if (!eq) {
            errf(err,
                 "%s: malformed line '%s': expected 'key = value', '[section]' or a "
                 "comment starting with # or ;",
                 where, s);
            goto done;
        }
        char *kend = eq;
        while (kend > s && (kend[-1] == ' ' || kend[-1] == '\t')) kend--;
        *kend = 0;
        if (*s == 0) {
            errf(err, "%s: malformed line: a key name is missing before '='", where);
            goto done;
        }
        for (char *q = s; *q; q++) {
            if (!valid_name_char(*q)) {
                errf(err, "%s: malformed key name '%s': use letters, digits and _", where, s);
                goto done;
            }
        }
        if (!section) {
            const ConfigKey *sug = closest_key(NULL, s);
            if (sug)
                errf(err,
                     "%s: key '%s' before any [section]; did you mean '%s' (put it under "
                     "[%s])?",
                     where, s, sug->key, sug->section);
            else
                errf(err, "%s: key '%s' before any [section]; put keys under a [section]", where,
                     s);
            goto done;
        }
        char full[300];
        snprintf(full, sizeof full, "%s.%s", section, s);
        const ConfigKey *k = config_find_key(full);
        if (!k) {
            unknown_key_error(err, where, section, s);
            goto done;
        }
        int ki = (int)(k - config_keys);
        if (set_at[ki]) {
            errf(err, "%s: duplicate key %s (already set on line %d); keep one of them", where,
                 k->key, set_at[ki]);
            goto done;
        }
        set_at[ki] = lineno;
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t') v++;
        if (parse_value(v, 1, value, CONFIG_STR_MAX + 1, where, k->key, err) != 0) goto done;
        if (set_value(c, k, value, where, err) != 0) goto done;
    }
    rc = 0;
done:
    free(set_at);
    free(line);
    free(value);
    return rc;
}

int config_parse_file(RlhfConfig *c, const char *path, char *err) {
    size_t len;
    char *text = file_read_all(path, &len, err);
    if (!text) return -1;
    if (strlen(text) != len) {
        free(text);
        return errf(err, "%s: contains a NUL byte; is this a text INI file?", path);
    }
    int rc = config_parse_text(c, text, path, err);
    free(text);
    return rc;
}

/* Unknown dotted name "sec.key" (or a bare "key"): the error with a suggestion. */
static int unknown_dotted_error(char *err, const char *where, const char *dotted) {
    char sec[256];
    const char *dot = strchr(dotted, '.');
    if (!dot || (size_t)(dot - dotted) >= sizeof sec)
        return unknown_key_error(err, where, NULL, dotted);
    memcpy(sec, dotted, (size_t)(dot - dotted));
    sec[dot - dotted] = 0;
    return unknown_key_error(err, where, sec, dot + 1);
}

int config_set(RlhfConfig *c, const char *key, const char *value, char *err) {
    char where[300];
    snprintf(where, sizeof where, "setting '%.250s'", key);
    const ConfigKey *k = config_find_key(key);
    if (!k) return unknown_dotted_error(err, where, key);
    return set_value(c, k, value, where, err);
}

int config_override(RlhfConfig *c, const char *arg, char *err) {
    char where[300];
    snprintf(where, sizeof where, "override '%.250s'", arg);
    const char *a = arg;
    if (a[0] == '-' && a[1] == '-') a += 2;
    const char *eq = strchr(a, '=');
    if (!eq || eq == a)
        return errf(err, "%s: expected section.key=value (e.g. optim.lr=1e-3)", where);
    char name[256];
    size_t nlen = (size_t)(eq - a);
    if (nlen >= sizeof name) return errf(err, "%s: key name too long", where);
    memcpy(name, a, nlen);
    name[nlen] = 0;
    const ConfigKey *k = config_find_key(name);
    if (!k) return unknown_dotted_error(err, where, name);
    char *value = xmalloc(CONFIG_STR_MAX + 1);
    int rc = parse_value(eq + 1, 0, value, CONFIG_STR_MAX + 1, where, k->key, err);
    if (rc == 0) rc = set_value(c, k, value, where, err);
    free(value);
    return rc;
}

// ----------------------------------------------------------------------------
// cross-key rules

/* A tri-state model key (auto|true|false): the preset's value for auto. */
static int tri_state(const char *v, int preset_value) {
    if (strcmp(v, "true") == 0) return 1;
    if (strcmp(v, "false") == 0) return 0;
    return preset_value;
}

/* The Llama family's keys over out (a preset's values or zeros for custom). */
static void model_llama_keys(const struct config_model *m, int custom, GPTConfig *out) {
    if (custom) {
        out->tie_embeddings = 1;
        out->rope_theta = 10000.0f;
        out->norm_eps = 1e-5f;
    }
    if (m->n_kv_head) out->n_kv_head = m->n_kv_head;
    if (out->n_kv_head == 0) out->n_kv_head = out->n_head;
    if (m->d_ff) out->d_ff = m->d_ff;
    if (m->head_dim) out->head_dim = m->head_dim;
    out->qkv_bias = tri_state(m->qkv_bias, out->qkv_bias);
    out->qk_norm = tri_state(m->qk_norm, out->qk_norm);
    out->tie_embeddings = tri_state(m->tie_embeddings, out->tie_embeddings);
    if (m->rope_theta != 0.0) out->rope_theta = (float)m->rope_theta;
    if (m->norm_eps != 0.0) out->norm_eps = (float)m->norm_eps;
}

/* The first Llama-only key a GPT-2 model sets, or NULL. */
static const char *model_llama_key_set(const struct config_model *m) {
    if (m->n_kv_head) return "model.n_kv_head";
    if (m->d_ff) return "model.d_ff";
    if (m->head_dim) return "model.head_dim";
    if (strcmp(m->qkv_bias, "auto") != 0) return "model.qkv_bias";
    if (strcmp(m->qk_norm, "auto") != 0) return "model.qk_norm";
    if (strcmp(m->tie_embeddings, "auto") != 0) return "model.tie_embeddings";
    if (m->rope_theta != 0.0) return "model.rope_theta";
    if (m->norm_eps != 0.0) return "model.norm_eps";
    return NULL;
}

int config_model(const RlhfConfig *c, int tokenizer_vocab, GPTConfig *out, char *err) {
    const struct config_model *m = &c->model;
    int custom = strcmp(m->preset, "custom") == 0;
    if (custom) {
        memset(out, 0, sizeof *out);
        if (m->n_layer <= 0 || m->n_head <= 0 || m->n_embd <= 0 || m->max_seq_len <= 0)
            return errf(err,
                        "model.preset = custom needs model.n_layer, model.n_head, "
                        "model.n_embd and model.max_seq_len all > 0 (got %d, %d, %d, %d)",
                        m->n_layer, m->n_head, m->n_embd, m->max_seq_len);
        out->family = strcmp(m->family, "llama") == 0 ? GPT_FAMILY_LLAMA : GPT_FAMILY_GPT2;
    } else if (gpt_config_preset(m->preset, out) != 0) {
        return errf(err, "model.preset = %s: unknown preset", m->preset);
    } else if (strcmp(m->family, "auto") != 0 &&
               strcmp(m->family, gpt_family_name(out->family)) != 0) {
        return errf(err, "model.family = %s but model.preset = %s is a %s model: use "
                         "model.preset = custom for a %s model of your own sizes", m->family,
                    m->preset, gpt_family_name(out->family), m->family);
    }
    if (m->n_layer) out->n_layer = m->n_layer;
    if (m->n_head) out->n_head = m->n_head;
    if (m->n_embd) out->n_embd = m->n_embd;
    if (m->max_seq_len) out->max_seq_len = m->max_seq_len;
    out->vocab_size = m->vocab_size ? m->vocab_size : tokenizer_vocab;
    out->head = GPT_HEAD_LM;
    if (out->family == GPT_FAMILY_LLAMA) {
        model_llama_keys(m, custom, out);
        if (out->d_ff == 0)
            return errf(err, "model.family = llama needs model.d_ff > 0 (the SwiGLU MLP's "
                             "width, e.g. about 8/3 of model.n_embd)");
    } else if (model_llama_key_set(m)) {
        return errf(err, "%s applies to the llama family only, and this model is gpt2 "
                         "(model.preset = %s, model.family = %s): remove it, or choose a "
                         "llama model (model.preset = llama-tiny | smol, or custom with "
                         "model.family = llama)", model_llama_key_set(m), m->preset, m->family);
    }
    /* the family's own rules (gpt.h); the vocabulary may be unknown yet (0: the tokenizer's) */
    GPTConfig check = *out;
    if (check.vocab_size == 0) check.vocab_size = 2;
    char why[ERRBUF_LEN];
    if (gpt_config_validate(&check, why) != 0) return errf(err, "model: %s", why);
    return 0;
}

int config_validate(const RlhfConfig *c, char *err) {
    GPTConfig g;
    if (config_model(c, 0, &g, err) != 0) return -1;
    if (c->data.max_prompt_len + c->data.max_response_len > g.max_seq_len)
        return errf(err,
                    "data.max_prompt_len (%d) + data.max_response_len (%d) = %d exceeds the "
                    "model's max_seq_len %d; shorten them or raise model.max_seq_len",
                    c->data.max_prompt_len, c->data.max_response_len,
                    c->data.max_prompt_len + c->data.max_response_len, g.max_seq_len);
    if (c->data.max_prompt_len + c->gen.max_new_tokens > g.max_seq_len)
        return errf(err,
                    "data.max_prompt_len (%d) + gen.max_new_tokens (%d) = %d exceeds the "
                    "model's max_seq_len %d: a generated sequence would not fit",
                    c->data.max_prompt_len, c->gen.max_new_tokens,
                    c->data.max_prompt_len + c->gen.max_new_tokens, g.max_seq_len);
    if (c->optim.min_lr > c->optim.lr)
        return errf(err, "optim.min_lr (%g) is larger than optim.lr (%g)", c->optim.min_lr,
                    c->optim.lr);
    if (c->optim.micro_batch_size > c->optim.batch_size)
        return errf(err, "optim.micro_batch_size (%d) is larger than optim.batch_size (%d)",
                    c->optim.micro_batch_size, c->optim.batch_size);
    if (c->optim.steps == 0 && c->optim.epochs == 0)
        return errf(err, "optim.steps and optim.epochs are both 0: set one of them");
    if (c->ppo.minibatch > c->ppo.rollout_batch)
        return errf(err, "ppo.minibatch (%d) is larger than ppo.rollout_batch (%d)",
                    c->ppo.minibatch, c->ppo.rollout_batch);
    if (c->run.resume[0] == 0)
        return errf(err, "run.resume is empty: use none, auto or a checkpoint path");
    if (c->run.out_dir[0] == 0) return errf(err, "run.out_dir is empty: name an output folder");
    if (strcmp(c->judge.kind, "rule") == 0 && c->judge.rule[0] == 0)
        return errf(err, "judge.kind = rule needs judge.rule (the rule's name)");
    if (strcmp(c->judge.kind, "mix") == 0 && c->judge.route[0] == 0)
        return errf(err, "judge.kind = mix needs judge.route (e.g. judge.route = "
                         "arith:rule:arith, count:rule:count, repeat:rule:repeat, *:rm)");
    if (strcmp(c->dpo.loss, "cdpo") != 0 && c->dpo.label_smoothing != 0.0)
        return errf(err, "dpo.label_smoothing = %g only applies to dpo.loss = cdpo (is %s)",
                    c->dpo.label_smoothing, c->dpo.loss);
    return 0;
}

int config_load(RlhfConfig *c, const char *path, int n, char *const *overrides, char *err) {
    config_defaults(c);
    if (path && config_parse_file(c, path, err) != 0) return -1;
    for (int i = 0; i < n; i++)
        if (config_override(c, overrides[i], err) != 0) return -1;
    return config_validate(c, err);
}

// ----------------------------------------------------------------------------
// dumping, comparing, help

typedef struct {
    char *p;
    size_t len, cap;
} Text;

static void text_add(Text *t, const char *s) {
    size_t n = strlen(s);
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->p = xrealloc(t->p, t->cap);
    }
    memcpy(t->p + t->len, s, n + 1);
    t->len += n;
}

char *config_to_text(const RlhfConfig *c) {
    Text t = {0};
    char *val = xmalloc(2 * CONFIG_STR_MAX + 8);
    text_add(&t, "# rlhf-c configuration: every key, effective values\n");
    const char *section = NULL;
    for (int i = 0; i < config_num_keys; i++) {
        const ConfigKey *k = &config_keys[i];
        if (!section || strcmp(section, k->section) != 0) {
            section = k->section;
            text_add(&t, "\n[");
            text_add(&t, section);
            text_add(&t, "]\n");
        }
        config_value_text(c, k, val, 2 * CONFIG_STR_MAX + 8);
        text_add(&t, k->name);
        text_add(&t, " = ");
        text_add(&t, val);
        text_add(&t, "\n");
    }
    free(val);
    return t.p;
}

int config_from_text(RlhfConfig *c, const char *text, const char *source, char *err) {
    config_defaults(c);
    if (config_parse_text(c, text, source, err) != 0) return -1;
    return config_validate(c, err);
}

static int value_equal(const RlhfConfig *a, const RlhfConfig *b, const ConfigKey *k) {
    const void *pa = cfield(a, k), *pb = cfield(b, k);
    switch (k->type) {
    case CONFIG_INT: return *(const int *)pa == *(const int *)pb;
    case CONFIG_FLOAT: return *(const double *)pa == *(const double *)pb;
    case CONFIG_BOOL: return *(const bool *)pa == *(const bool *)pb;
    case CONFIG_STR:
    case CONFIG_ENUM: return strcmp(pa, pb) == 0;
    }
    return 0;
}

int config_diff(const RlhfConfig *a, const RlhfConfig *b, char *buf, size_t cap) {
    int count = 0;
    size_t o = 0;
    char va[160], vb[160];
    if (buf && cap) buf[0] = 0;
    for (int i = 0; i < config_num_keys; i++) {
        const ConfigKey *k = &config_keys[i];
        if (value_equal(a, b, k)) continue;
        count++;
        if (!buf || o + 1 >= cap) continue;
        config_value_text(a, k, va, sizeof va);
        config_value_text(b, k, vb, sizeof vb);
        int w = snprintf(buf + o, cap - o, "%s: %s -> %s\n", k->key, va, vb);
        if (w < 0) break;
        o += (size_t)w < cap - o ? (size_t)w : cap - o - 1;
    }
    return count;
}

static void range_text(const ConfigKey *k, char *buf, size_t cap) {
    char lo[40], hi[40];
    switch (k->type) {
    case CONFIG_INT: snprintf(buf, cap, "%lld..%lld", k->min_i, k->max_i); break;
    case CONFIG_FLOAT:
        format_double(k->min_f, lo, sizeof lo);
        format_double(k->max_f, hi, sizeof hi);
        snprintf(buf, cap, "%s..%s", lo, hi);
        break;
    case CONFIG_BOOL: snprintf(buf, cap, "true|false"); break;
    case CONFIG_ENUM: snprintf(buf, cap, "%s", k->choices); break;
    case CONFIG_STR: snprintf(buf, cap, "text"); break;
    }
}

static const char *type_name(ConfigType t) {
    switch (t) {
    case CONFIG_INT: return "int";
    case CONFIG_FLOAT: return "float";
    case CONFIG_BOOL: return "bool";
    case CONFIG_STR: return "string";
    case CONFIG_ENUM: return "enum";
    }
    return "?";
}

void config_print_help(FILE *f) {
    RlhfConfig *d = xmalloc(sizeof *d);
    config_defaults(d);
    char def[CONFIG_STR_MAX + 8], range[128];
    fprintf(f, "configuration keys (INI [section] key = value, or override section.key=value):\n");
    const char *section = NULL;
    for (int i = 0; i < config_num_keys; i++) {
        const ConfigKey *k = &config_keys[i];
        if (!section || strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(f, "\n[%s]\n", section);
        }
        config_value_text(d, k, def, sizeof def);
        range_text(k, range, sizeof range);
        fprintf(f, "  %-28s %-6s default %-16s %s\n      %s\n", k->key, type_name(k->type), def,
                range, k->help);
    }
    free(d);
}

void config_write_markdown(FILE *f) {
    RlhfConfig *d = xmalloc(sizeof *d);
    config_defaults(d);
    char def[CONFIG_STR_MAX + 8], range[128];
    fprintf(f, "# Configuration reference\n\n"
               "Generated from `common/config_keys.h` (the one list of keys) by\n"
               "`build/tests/test_config --markdown > docs/config.md`; `test_config` fails\n"
               "when this file is out of date.\n\n"
               "A run reads defaults, then an INI file, then command-line overrides\n"
               "`section.key=value` (which win). In C every key is a typed field\n"
               "`cfg.<section>.<key>` of `RlhfConfig` (common/config.h). INI syntax:\n"
               "`[section]`, `key = value`, comments start with `#` or `;` (at the start of\n"
               "a line or after whitespace), strings may be double-quoted with escapes\n"
               "`\\\"` `\\\\` `\\n` `\\t` `\\r`; a key may be set only once per file.\n"
               "Ranges are inclusive. Checkpoints store the complete effective configuration\n"
               "as INI text (`config_to_text`).\n\n"
               "Cross-key rules (`config_validate`): `data.max_prompt_len +\n"
               "data.max_response_len` and `data.max_prompt_len + gen.max_new_tokens`\n"
               "<= the model's max_seq_len; `optim.min_lr <=\n"
               "optim.lr`; `optim.micro_batch_size <= optim.batch_size`; `optim.steps` or\n"
               "`optim.epochs` > 0; `ppo.minibatch <= ppo.rollout_batch`; `model.preset =\n"
               "custom` needs every model size; `model.n_embd` divisible by\n"
               "`model.n_head`; `judge.kind = rule` needs `judge.rule`; `judge.kind = mix`\n"
               "needs `judge.route`;\n"
               "`dpo.label_smoothing` only with `dpo.loss = cdpo`.\n");
    const char *section = NULL;
    for (int i = 0; i < config_num_keys; i++) {
        const ConfigKey *k = &config_keys[i];
        if (!section || strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(f,
                    "\n## [%s]\n\n| key | type | default | range | meaning |\n"
                    "|---|---|---|---|---|\n",
                    section);
        }
        config_value_text(d, k, def, sizeof def);
        range_text(k, range, sizeof range);
        fprintf(f, "| `%s` | %s | `%s` | ", k->key, type_name(k->type), def);
        /* '|' inside a table cell must be escaped */
        for (const char *s = range; *s; s++) fputs(*s == '|' ? "\\|" : (char[2]){*s, 0}, f);
        fputs(" | ", f);
        for (const char *s = k->help; *s; s++) fputs(*s == '|' ? "\\|" : (char[2]){*s, 0}, f);
        fputs(" |\n", f);
    }
    free(d);
}
