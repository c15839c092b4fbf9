/*
 * common/verify.c — verifiers that read only the prompt and response text (see
 * verify.h). Deliberately self-contained: its own word splitter and number reader, no
 * task world, no gold judge, so nothing from the evaluation side can reach a reward.
 *
 * A text becomes tokens: words (lower case), the operator words "+" "-" "=", and numbers
 * (digits, "7.5", number words, "twenty one" / "twenty-one" joined into one). The prompt
 * rules then match short token patterns; the response checks look at its numbers or
 * words.
 */
#include "verify.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define V_MAX_TOK 256
#define V_NONINT INT_MIN /* "7.5", or above V_MAX_NUM: a number that is never a right answer */
#define V_MAX_NUM 100000000L

typedef struct {
    char w[VERIFY_WORD_LEN];
    int is_num;
    int num;
} VTok;

typedef struct {
    int n;
    VTok t[V_MAX_TOK];
} VText;

static const char *const UNITS[] = {"zero",    "one",     "two",       "three",    "four",
                                    "five",    "six",     "seven",     "eight",    "nine",
                                    "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                    "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
static const char *const TENS[] = {"twenty", "thirty",  "forty",  "fifty",
                                   "sixty",  "seventy", "eighty", "ninety"};

const char *verify_kind_name(VerifyKind k) {
    static const char *const n[] = {"none", "arith", "count", "repeat"};
    return (unsigned)k < VERIFY_N_KIND ? n[k] : "none";
}

int verify_kind_from_name(const char *name) {
    for (int k = 0; k < VERIFY_N_KIND; k++)
        if (strcmp(name, verify_kind_name((VerifyKind)k)) == 0) return k;
    return -1;
}

/* The value of one word: digits (with an optional decimal part), a number word 0..19 or
 * a tens word; -1 if it is no number. *tens is set for a tens word (so a unit may join). */
static int word_number(const char *w, int *tens) {
    *tens = 0;
    if (isdigit((unsigned char)w[0])) {
        long v = 0;
        const char *c = w;
        for (; isdigit((unsigned char)*c); c++)
            if (v <= V_MAX_NUM) v = v * 10 + (*c - '0');
        if (*c == '.') {
            for (c++; *c; c++)
                if (*c != '0') return V_NONINT;
        }
        if (*c) return -1;
        return v > V_MAX_NUM ? V_NONINT : (int)v; /* so a + b cannot overflow */
    }
    for (int i = 0; i < 20; i++)
        if (strcmp(w, UNITS[i]) == 0) return i;
    for (int i = 0; i < 8; i++)
        if (strcmp(w, TENS[i]) == 0) {
            *tens = 1;
            return 20 + 10 * i;
        }
    return -1;
}

static void push_word(VText *t, const char *w, size_t len) {
    if (t->n == V_MAX_TOK || len == 0) return;
    VTok *k = &t->t[t->n++];
    if (len >= VERIFY_WORD_LEN) len = VERIFY_WORD_LEN - 1;
    memcpy(k->w, w, len);
    k->w[len] = 0;
    k->is_num = 0;
    k->num = 0;
}

/* Split [s, end) into words (see the top comment). */
static void split_words(VText *t, const char *s, const char *end) {
    char w[VERIFY_WORD_LEN * 2];
    size_t len = 0;
    t->n = 0;
    for (const unsigned char *c = (const unsigned char *)s; (const char *)c < end; c++) {
        int ch = -1, op = 0;
        if (isalnum(*c) || *c == '\'')
            ch = tolower(*c);
        else if (*c == '.' && len > 0 && isdigit((unsigned char)w[len - 1]) &&
                 (const char *)c + 1 < end && isdigit(c[1]))
            ch = '.';
        else if (c[0] == 0xE2 && (const char *)c + 2 < end && c[1] == 0x80 && c[2] == 0x99) {
            ch = '\''; /* ’ */
            c += 2;
        } else if (c[0] == 0xE2 && (const char *)c + 2 < end && c[1] == 0x88 && c[2] == 0x92) {
            op = '-'; /* − */
            c += 2;
        } else if (*c == '+' || *c == '-' || *c == '=')
            op = *c;
        if (ch >= 0) {
            if (len + 1 < sizeof w) w[len++] = (char)ch;
            continue;
        }
        push_word(t, w, len);
        len = 0;
        if (op) {
            char o = (char)op;
            push_word(t, &o, 1);
        }
    }
    push_word(t, w, len);
}

/* Mark numbers and join "twenty one" / "twenty - one" into one token. */
static void join_numbers(VText *t) {
    int o = 0;
    for (int i = 0; i < t->n; i++) {
        int tens, v = word_number(t->t[i].w, &tens);
        VTok k = t->t[i];
        if (v != -1) {
            k.is_num = 1;
            k.num = v;
            int j = i + 1, ut;
            if (tens && j < t->n && !strcmp(t->t[j].w, "-") && j + 1 < t->n) j++;
            int u = tens && j < t->n && !isdigit((unsigned char)t->t[j].w[0])
                        ? word_number(t->t[j].w, &ut)
                        : -1;
            if (u >= 1 && u <= 9) {
                k.num += u;
                i = j;
            }
        }
        t->t[o++] = k;
    }
    t->n = o;
}

static void tokenize(VText *t, const char *s, const char *end) {
    split_words(t, s, end);
    join_numbers(t);
}

static int is(const VText *t, int i, const char *w) {
    return i >= 0 && i < t->n && !t->t[i].is_num && strcmp(t->t[i].w, w) == 0;
}
static int num(const VText *t, int i) { return i >= 0 && i < t->n && t->t[i].is_num && t->t[i].num >= 0; }

static int set_arith(VerifyQuery *q, int a, char op, int b) {
    q->kind = VERIFY_ARITH;
    q->a = a;
    q->b = b;
    q->op = op;
    q->result = op == '+' ? a + b : a - b;
    return 1;
}

static int parse_arith(const VText *t, VerifyQuery *q) {
    for (int i = 0; i < t->n; i++) {
        if (num(t, i) && num(t, i + 2)) {
            if (is(t, i + 1, "plus") || is(t, i + 1, "+"))
                return set_arith(q, t->t[i].num, '+', t->t[i + 2].num);
            if (is(t, i + 1, "minus") || is(t, i + 1, "-"))
                return set_arith(q, t->t[i].num, '-', t->t[i + 2].num);
        }
        if (is(t, i, "add") && num(t, i + 1) && (is(t, i + 2, "and") || is(t, i + 2, "to")) &&
            num(t, i + 3))
            return set_arith(q, t->t[i + 1].num, '+', t->t[i + 3].num);
        if (is(t, i, "subtract") && num(t, i + 1) && is(t, i + 2, "from") && num(t, i + 3))
            return set_arith(q, t->t[i + 3].num, '-', t->t[i + 1].num);
    }
    return 0;
}

static int parse_count(const VText *t, VerifyQuery *q) {
    int seen = 0;
    for (int i = 0; i < t->n; i++) {
        seen |= is(t, i, "count") || is(t, i, "numbers");
        if (!seen) continue;
        int from = -1, to = -1;
        if (is(t, i, "from") && num(t, i + 1) && is(t, i + 2, "to") && num(t, i + 3)) {
            from = t->t[i + 1].num;
            to = t->t[i + 3].num;
        } else if (is(t, i, "count") && is(t, i + 1, "to") && num(t, i + 2)) {
            from = 1;
            to = t->t[i + 2].num;
        }
        if (from >= 0 && to >= from && to - from <= 1000) {
            q->kind = VERIFY_COUNT;
            q->from = from;
            q->to = to;
            return 1;
        }
    }
    return 0;
}

/* "once", "twice", "thrice", "N times" at i: the count, or -1 */
static int times_at(const VText *t, int i) {
    if (is(t, i, "once")) return 1;
    if (is(t, i, "twice")) return 2;
    if (is(t, i, "thrice")) return 3;
    if (num(t, i) && t->t[i].num >= 1 && t->t[i].num <= 1000 &&
        (is(t, i + 1, "times") || is(t, i + 1, "time")))
        return t->t[i].num;
    return -1;
}

static int parse_repeat(const VText *t, VerifyQuery *q) {
    for (int i = 0; i < t->n; i++) {
        if (!is(t, i, "repeat") && !is(t, i, "say") && !is(t, i, "write")) continue;
        int j = i + 1;
        if (is(t, j, "the") && is(t, j + 1, "word")) j += 2;
        else if (is(t, j, "word")) j++;
        if (j >= t->n || !strcmp(t->t[j].w, "+") || !strcmp(t->t[j].w, "-")) continue;
        int k = times_at(t, j + 1);
        if (k < 1) continue;
        q->kind = VERIFY_REPEAT;
        q->times = k;
        memcpy(q->word, t->t[j].w, sizeof q->word);
        return 1;
    }
    return 0;
}

VerifyKind verify_parse(const char *prompt, VerifyQuery *q) {
    memset(q, 0, sizeof *q);
    if (!prompt) return VERIFY_NONE;
    const char *s = prompt, *end = prompt + strlen(prompt);
    if (!strncmp(s, "User:", 5)) s += 5;
    for (const char *a = end; a > s; a--) /* the last "\nAssistant:" ends the question */
        if (a[-1] == '\n' && !strncmp(a, "Assistant:", 10)) {
            end = a - 1;
            break;
        }
    static _Thread_local VText t;
    tokenize(&t, s, end);
    if (parse_arith(&t, q) || parse_count(&t, q) || parse_repeat(&t, q)) return q->kind;
    memset(q, 0, sizeof *q);
    return VERIFY_NONE;
}

/* The numbers of a response in order; "-" before a number that does not follow a number
 * makes it negative ("-5"). Returns how many (at most cap). */
static int response_numbers(const VText *t, int *out, int cap) {
    int n = 0;
    for (int i = 0; i < t->n && n < cap; i++) {
        if (!t->t[i].is_num) continue;
        int v = t->t[i].num;
        if (v != V_NONINT && is(t, i - 1, "-") && !(i >= 2 && t->t[i - 2].is_num)) v = -v - 1;
        out[n++] = v; /* -v-1: negative and never equal to a non-negative answer */
    }
    return n;
}

static double score_arith(const VerifyQuery *q, const VText *t) {
    int v[V_MAX_TOK], n = response_numbers(t, v, V_MAX_TOK), right = 0;
    for (int i = 0; i < n; i++) {
        if (v[i] == q->result)
            right = 1;
        else if (v[i] != q->a && v[i] != q->b)
            return 0.0;
    }
    return right ? 1.0 : 0.0;
}

static double score_count(const VerifyQuery *q, const VText *t) {
    int v[V_MAX_TOK], n = response_numbers(t, v, V_MAX_TOK);
    if (n != q->to - q->from + 1) return 0.0;
    for (int i = 0; i < n; i++)
        if (v[i] != q->from + i) return 0.0;
    return 1.0;
}

static double score_repeat(const VerifyQuery *q, const VText *t) {
    int c = 0;
    for (int i = 0; i < t->n; i++)
        c += strcmp(t->t[i].w, q->word) == 0;
    return c == q->times ? 1.0 : 0.0;
}

double verify_score(const VerifyQuery *q, const char *response) {
    if (!q || q->kind == VERIFY_NONE) return 0.0;
    static _Thread_local VText t;
    if (!response) response = "";
    tokenize(&t, response, response + strlen(response));
    switch (q->kind) {
    case VERIFY_ARITH: return score_arith(q, &t);
    case VERIFY_COUNT: return score_count(q, &t);
    case VERIFY_REPEAT: return score_repeat(q, &t);
    default: return 0.0;
    }
}
