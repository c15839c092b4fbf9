/*
 * common/bpe.c — byte-level BPE (GPT-2): pre-tokenizer, merges, encode/decode, the
 * vocab.json/merges.txt loader and writer, and training. See bpe.h for the contract.
 *
 * Sections: bytes_to_unicode and UTF-8; the pre-tokenizer; the byte-string map; applying
 * merges (naive reference and heap version); encode/decode; building and validating a
 * BPE (load); writing (save); training.
 */
#include "bpe.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "unicode_nfc.h"
#include "util.h"

#define NO_RANK INT_MAX
#define PAIR_EMPTY UINT64_MAX

// ---- bytes_to_unicode and UTF-8 ------------------------------------------------------
// GPT-2 writes each byte as a printable code point: the 188 bytes that are printable in
// Latin-1 (33..126, 161..172, 174..255) as themselves, the other 68 (0..32, 127..160,
// 173) as 256, 257, ... in byte order. A trained tokenizer numbers its byte tokens in the
// same order (printable bytes first), which is GPT-2's id order for bytes.

uint32_t bpe_byte_to_unicode(unsigned char b) {
    if (b <= 32) return 256u + b;
    if (b >= 127 && b <= 160) return (uint32_t)b + 162u; /* 256 + 33 + (b - 127) */
    if (b == 173) return 323u;
    return b;
}

int bpe_unicode_to_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp >= 256 && cp <= 288) return (int)(cp - 256);
    if (cp >= 289 && cp <= 322) return (int)(cp - 162);
    if (cp == 323) return 173;
    return -1;
}

/* GPT-2's id of the one-byte token for b (its position in bytes_to_unicode's order). */
static int byte_gpt2_rank(unsigned char b) {
    if (b >= 33 && b <= 126) return b - 33;
    if (b >= 161 && b <= 172) return 94 + (b - 161);
    if (b >= 174) return 106 + (b - 174);
    return 188 + (int)(bpe_byte_to_unicode(b) - 256);
}

/* Decode one UTF-8 character at s[i] (i < n). Returns its byte length and sets *cp; an
 * invalid or truncated sequence (overlong, surrogate, > U+10FFFF) is one byte with
 * *cp = UINT32_MAX. */
static size_t utf8_next(const unsigned char *s, size_t n, size_t i, uint32_t *cp) {
    unsigned c = s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = UINT32_MAX;
        return 1;
    }
    if (n - i < len) {
        *cp = UINT32_MAX;
        return 1;
    }
    for (size_t k = 1; k < len; k++) {
        unsigned d = s[i + k];
        if ((d & 0xC0) != 0x80) {
            *cp = UINT32_MAX;
            return 1;
        }
        v = (v << 6) | (d & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = UINT32_MAX;
        return 1;
    }
    *cp = v;
    return len;
}

/* Append the UTF-8 encoding of cp (a valid scalar value) to out; returns bytes written. */
static size_t utf8_put(unsigned char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

UnicodeClass bpe_char_class(uint32_t cp) {
    if (cp < 0x80) { /* the hot path; tests check it against the table */
        if ((uint32_t)((cp | 32) - 'a') < 26) return UNI_LETTER;
        if ((uint32_t)(cp - '0') < 10) return UNI_NUMBER;
        if (cp == ' ' || (cp >= 9 && cp <= 13)) return UNI_SPACE;
        return UNI_OTHER;
    }
    int lo = 0, hi = unicode_num_ranges - 1;
    while (lo <= hi) {
        int mid = (lo + hi) >> 1;
        if (cp < unicode_ranges[mid].lo)
            hi = mid - 1;
        else if (cp > unicode_ranges[mid].hi)
            lo = mid + 1;
        else
            return (UnicodeClass)unicode_ranges[mid].cls;
    }
    return UNI_OTHER;
}

/* Class of the character at s[i]; invalid UTF-8 bytes are "other". */
static size_t char_at(const unsigned char *s, size_t n, size_t i, UnicodeClass *cls,
                      uint32_t *cp_out) {
    uint32_t cp;
    size_t len = utf8_next(s, n, i, &cp);
    *cls = cp == UINT32_MAX ? UNI_OTHER : bpe_char_class(cp);
    *cp_out = cp;
    return len;
}

// ---- the pre-tokenizer ---------------------------------------------------------------
// The alternatives of GPT-2's pattern are tried in order at i, as the regex engine does:
//   1. the contractions 's 't 're 've 'm 'll 'd (case-sensitive);
//   2.-4. an optional U+0020 then a maximal run of letters / numbers / "other"
//      characters (not \s, \p{L}, \p{N}); the space is taken only if such a run follows;
//   5. \s+(?!\S): a whitespace run up to the end of text, or, when a non-space follows,
//      the run minus its last character (backtracking leaves that character to start the
//      next pre-token, e.g. " word");
//   6. \s+: a single whitespace character followed by a non-space (e.g. "\n" before "x").

size_t bpe_pretoken_end(const char *text, size_t n, size_t i) {
    const unsigned char *s = (const unsigned char *)text;
    ASSERT(i < n);
    if (s[i] == '\'' && i + 1 < n) {
        unsigned char c = s[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
        if (i + 2 < n) {
            unsigned char d = s[i + 2];
            if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l'))
                return i + 3;
        }
    }
    UnicodeClass cls;
    uint32_t cp;
    size_t len = char_at(s, n, i, &cls, &cp);
    size_t j = i;
    if (cp == ' ' && i + 1 < n) {
        UnicodeClass cls2;
        uint32_t cp2;
        size_t len2 = char_at(s, n, i + 1, &cls2, &cp2);
        if (cls2 != UNI_SPACE) {
            j = i + 1;
            cls = cls2;
            len = len2;
        }
    }
    if (cls != UNI_SPACE) {
        j += len;
        while (j < n) {
            UnicodeClass c2;
            size_t l2 = char_at(s, n, j, &c2, &cp);
            if (c2 != cls) break;
            j += l2;
        }
        return j;
    }
    /* whitespace run starting at i */
    size_t last = i, count = 1;
    j = i + len;
    while (j < n) {
        UnicodeClass c2;
        size_t l2 = char_at(s, n, j, &c2, &cp);
        if (c2 != UNI_SPACE) break;
        last = j;
        j += l2;
        count++;
    }
    if (j == n) return n;
    return count >= 2 ? last : j;
}

// The Llama 3 / Qwen2 pattern (tokenizer.json "Split" regex), alternatives in order:
//   1. (?i:'s|'t|'re|'ve|'m|'ll|'d) — ASCII letters in either case;
//   2. [^\r\n\p{L}\p{N}]?\p{L}+ — a letter run, with one character before it that is not
//      CR, LF, a letter or a number (a space, a tab, punctuation: " word", "\tword", "$x");
//   3. \p{N}{1,max_digits} — Llama 3 takes up to three numbers, Qwen2 one;
//   4. " ?[^\s\p{L}\p{N}]+[\r\n]*" — an optional U+0020, a run of "other" characters,
//      then any CR/LF run;
//   5. \s*[\r\n]+ — a whitespace run up to and including its last CR or LF (the regex
//      engine backs \s* off until [\r\n]+ matches, which is at the last CR/LF);
//   6. \s+(?!\S) and 7. \s+ — as in GPT-2's pattern (no CR/LF is left in the run here).

static int is_crlf(uint32_t cp) {
    return cp == '\r' || cp == '\n';
}

/* Alternative 1 at s[i] == '\'': the contraction's length, or 0. */
static size_t contraction_len(const unsigned char *s, size_t n, size_t i) {
    if (i + 1 >= n) return 0;
    unsigned c = s[i + 1] | 0x20u; /* ASCII lower case; non-letters never match below */
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
    if (i + 2 >= n) return 0;
    unsigned d = s[i + 2] | 0x20u;
    if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 3;
    return 0;
}

/* End of the run of characters of class cls that starts at j. */
static size_t run_end(const unsigned char *s, size_t n, size_t j, UnicodeClass cls) {
    while (j < n) {
        UnicodeClass c;
        uint32_t cp;
        size_t l = char_at(s, n, j, &c, &cp);
        if (c != cls) break;
        j += l;
    }
    return j;
}

/* Alternatives 5-7 on the whitespace run that starts at i (its first character is l0
 * bytes long). */
static size_t space_run_end(const unsigned char *s, size_t n, size_t i, size_t l0) {
    size_t last = i, j = i + l0, count = 1, crlf_end = 0;
    UnicodeClass c;
    uint32_t cp;
    char_at(s, n, i, &c, &cp);
    if (is_crlf(cp)) crlf_end = i + 1;
    while (j < n) {
        size_t l = char_at(s, n, j, &c, &cp);
        if (c != UNI_SPACE) break;
        if (is_crlf(cp)) crlf_end = j + 1;
        last = j;
        j += l;
        count++;
    }
    if (crlf_end) return crlf_end;
    if (j == n) return n;
    return count >= 2 ? last : j;
}

/* Digits first, then GPT-2's pattern per run: the run is looked up once per run (cached
 * in *run_end), so a long text without digits stays linear. */
size_t bpe_pretoken_end_digits(const char *text, size_t n, size_t i, size_t *run_end) {
    const unsigned char *s = (const unsigned char *)text;
    ASSERT(i < n);
    UnicodeClass cls;
    uint32_t cp;
    size_t len = char_at(s, n, i, &cls, &cp);
    if (cls == UNI_NUMBER) return i + len;
    if (*run_end <= i || *run_end > n) {
        size_t j = i + len;
        while (j < n) {
            size_t l = char_at(s, n, j, &cls, &cp);
            if (cls == UNI_NUMBER) break;
            j += l;
        }
        *run_end = j;
    }
    return bpe_pretoken_end(text, *run_end, i);
}

size_t bpe_pretoken_end_llama3(const char *text, size_t n, size_t i, int max_digits) {
    const unsigned char *s = (const unsigned char *)text;
    ASSERT(i < n && max_digits >= 1);
    if (s[i] == '\'') {
        size_t l = contraction_len(s, n, i);
        if (l) return i + l;
    }
    UnicodeClass cls, cls2 = UNI_OTHER;
    uint32_t cp, cp2 = 0;
    size_t len = char_at(s, n, i, &cls, &cp), len2 = 0;
    if (i + len < n) len2 = char_at(s, n, i + len, &cls2, &cp2);
    if (cls == UNI_LETTER) return run_end(s, n, i + len, UNI_LETTER);
    if (cls != UNI_NUMBER && !is_crlf(cp) && cls2 == UNI_LETTER)
        return run_end(s, n, i + len + len2, UNI_LETTER);
    if (cls == UNI_NUMBER) {
        size_t j = i + len;
        for (int k = 1; k < max_digits && j < n; k++) {
            UnicodeClass c;
            uint32_t q;
            size_t l = char_at(s, n, j, &c, &q);
            if (c != UNI_NUMBER) break;
            j += l;
        }
        return j;
    }
    size_t start = cp == ' ' && cls2 == UNI_OTHER && len2 ? i + len : (cls == UNI_OTHER ? i : n);
    if (start != n) {
        size_t j = run_end(s, n, start, UNI_OTHER);
        while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
        return j;
    }
    return space_run_end(s, n, i, len);
}

// ---- a map from byte strings to ids --------------------------------------------------
// Open addressing over ids; the strings live outside (data + off[id] .. off[id+1]), so
// the same map serves the loader (token strings) and the trainer (token and word arenas).

typedef struct {
    int *slot; /* (cap) id or -1 */
    size_t cap, n;
} IdMap;

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)n; /* FNV-1a 64, length-seeded */
    for (size_t k = 0; k < n; k++) h = (h ^ p[k]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static void idmap_init(IdMap *m, size_t expected) {
    m->cap = 16;
    while (m->cap < expected * 2) m->cap <<= 1;
    m->slot = xmalloc(m->cap * sizeof(int));
    memset(m->slot, 0xff, m->cap * sizeof(int));
    m->n = 0;
}

static void idmap_free(IdMap *m) {
    free(m->slot);
    m->slot = NULL;
}

static int idmap_find(const IdMap *m, const unsigned char *data, const size_t *off,
                      const unsigned char *key, size_t len) {
    size_t mask = m->cap - 1, h = hash_bytes(key, len) & mask;
    for (;;) {
        int id = m->slot[h];
        if (id < 0) return -1;
        if (off[id + 1] - off[id] == len && memcmp(data + off[id], key, len) == 0) return id;
        h = (h + 1) & mask;
    }
}

static void idmap_put_raw(IdMap *m, const unsigned char *data, const size_t *off, int id) {
    size_t mask = m->cap - 1;
    size_t h = hash_bytes(data + off[id], off[id + 1] - off[id]) & mask;
    while (m->slot[h] >= 0) h = (h + 1) & mask;
    m->slot[h] = id;
    m->n++;
}

/* Insert id (whose string must not be present yet). */
static void idmap_put(IdMap *m, const unsigned char *data, const size_t *off, int id) {
    if ((m->n + 1) * 2 > m->cap) {
        IdMap bigger;
        bigger.cap = m->cap * 2;
        bigger.n = 0;
        bigger.slot = xmalloc(bigger.cap * sizeof(int));
        memset(bigger.slot, 0xff, bigger.cap * sizeof(int));
        for (size_t k = 0; k < m->cap; k++)
            if (m->slot[k] >= 0) idmap_put_raw(&bigger, data, off, m->slot[k]);
        free(m->slot);
        *m = bigger;
    }
    idmap_put_raw(m, data, off, id);
}

// ---- applying merges -----------------------------------------------------------------

static inline uint64_t pair_key(int a, int b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static inline size_t pair_slot(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 17) & mask;
}

static inline int pair_rank(const BPE *t, int a, int b) {
    uint64_t key = pair_key(a, b);
    size_t mask = t->pair_cap - 1, h = pair_slot(key, mask);
    for (;;) {
        uint64_t k = t->pair_key[h];
        if (k == key) return t->pair_rank[h];
        if (k == PAIR_EMPTY) return NO_RANK;
        h = (h + 1) & mask;
    }
}

/* GPT-2's loop, literally: find the adjacent pair of lowest rank, merge every occurrence
 * of it left to right, repeat. O(n^2) rank look-ups: the reference, and the fast path
 * for short pre-tokens. */
static int merge_naive(const BPE *t, int *w, int n) {
    while (n > 1) {
        int best = NO_RANK;
        for (int k = 0; k + 1 < n; k++) {
            int r = pair_rank(t, w[k], w[k + 1]);
            if (r < best) best = r;
        }
        if (best == NO_RANK) break;
        int a = t->merge_left[best], b = t->merge_right[best], c = t->merge_result[best];
        int out = 0;
        for (int k = 0; k < n;) {
            if (k + 1 < n && w[k] == a && w[k + 1] == b) {
                w[out++] = c;
                k += 2;
            } else {
                w[out++] = w[k++];
            }
        }
        n = out;
    }
    return n;
}

/* Binary min-heap of (rank << 32 | position) keys. */
static void heap_push(uint64_t *h, int *n, uint64_t v) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) >> 1;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, int *n) {
    uint64_t top = h[0], v = h[--(*n)];
    int i = 0, m = *n;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    if (m > 0) h[i] = v;
    return top;
}

/* The same result as merge_naive in O(n log n): symbols form a linked list; a heap holds
 * (rank, left position) of every adjacent pair with a rank. All entries of the lowest rank
 * r (one pair, since ranks are unique) are popped in position order and merged left to
 * right — GPT-2's one pass over the word; pairs that the merges create are pushed only
 * after that pass, because GPT-2 picks the next pair from the word as it stands after the
 * whole pass. Entries made stale by a merge are recognised on pop (the pair at that
 * position is no longer the merge's pair) and dropped. */
static int merge_heap(const BPE *t, int *w, int n) {
    int ibuf_stack[3 * 128];
    uint64_t hbuf_stack[3 * 128];
    int small = n <= 128;
    int *buf = small ? ibuf_stack : xmalloc((size_t)n * 3 * sizeof(int));
    /* at most n-1 initial pairs plus 2 per merge, at most n-1 merges: < 3n entries */
    uint64_t *heap = small ? hbuf_stack : xmalloc((size_t)n * 3 * sizeof(uint64_t));
    int *next = buf, *prev = buf + n, *pending = buf + 2 * n;
    int hn = 0;
    for (int k = 0; k < n; k++) {
        next[k] = k + 1 < n ? k + 1 : -1;
        prev[k] = k - 1;
        int r = k + 1 < n ? pair_rank(t, w[k], w[k + 1]) : NO_RANK;
        if (r != NO_RANK) heap_push(heap, &hn, ((uint64_t)r << 32) | (uint32_t)k);
    }
    while (hn > 0) {
        int r = (int)(heap[0] >> 32), np = 0;
        int a = t->merge_left[r], b = t->merge_right[r], c = t->merge_result[r];
        while (hn > 0 && (int)(heap[0] >> 32) == r) {
            int p = (int)(uint32_t)heap_pop(heap, &hn);
            int q = next[p];
            /* stale: p was consumed (then prev[p] < -1), or its pair changed */
            if (prev[p] < -1 || q < 0 || w[p] != a || w[q] != b) continue;
            w[p] = c;
            next[p] = next[q];
            if (next[q] >= 0) prev[next[q]] = p;
            prev[q] = -2; /* dead */
            pending[np++] = p;
        }
        for (int k = 0; k < np; k++) {
            int p = pending[k];
            ASSERT(prev[p] >= -1); /* a merged node is a left part: never consumed later */
            if (prev[p] >= 0) {
                int r2 = pair_rank(t, w[prev[p]], w[p]);
                if (r2 != NO_RANK) heap_push(heap, &hn, ((uint64_t)r2 << 32) | (uint32_t)prev[p]);
            }
            if (next[p] >= 0) {
                int r2 = pair_rank(t, w[p], w[next[p]]);
                if (r2 != NO_RANK) heap_push(heap, &hn, ((uint64_t)r2 << 32) | (uint32_t)p);
            }
        }
    }
    int out = 0;
    for (int k = 0; k >= 0; k = next[k]) w[out++] = w[k];
    if (!small) {
        free(buf);
        free(heap);
    }
    return out;
}

/* Hugging Face's order (tokenizers' Word::merge_all, and merges that need not be in
 * dependency order, as in Llama 3's file): always the single leftmost pair of lowest rank,
 * and pairs that a merge creates compete at once. With merges in dependency order (every
 * part made by an earlier merge) this gives the same result as GPT-2's loop. */
static int merge_naive_hf(const BPE *t, int *w, int n) {
    while (n > 1) {
        int best = NO_RANK, at = -1;
        for (int k = 0; k + 1 < n; k++) {
            int r = pair_rank(t, w[k], w[k + 1]);
            if (r < best) best = r, at = k;
        }
        if (at < 0) break;
        w[at] = t->merge_result[best];
        memmove(w + at + 1, w + at + 2, (size_t)(n - at - 2) * sizeof(int));
        n--;
    }
    return n;
}

/* merge_naive_hf in O(n log n): the heap of merge_heap, each entry merged as it is popped. */
static int merge_heap_hf(const BPE *t, int *w, int n) {
    int *buf = xmalloc((size_t)n * 2 * sizeof(int));
    uint64_t *heap = xmalloc((size_t)n * 3 * sizeof(uint64_t));
    int *next = buf, *prev = buf + n, hn = 0;
    for (int k = 0; k < n; k++) {
        next[k] = k + 1 < n ? k + 1 : -1;
        prev[k] = k - 1;
        int r = k + 1 < n ? pair_rank(t, w[k], w[k + 1]) : NO_RANK;
        if (r != NO_RANK) heap_push(heap, &hn, ((uint64_t)r << 32) | (uint32_t)k);
    }
    while (hn > 0) {
        uint64_t e = heap_pop(heap, &hn);
        int r = (int)(e >> 32), p = (int)(uint32_t)e, q = next[p];
        if (prev[p] < -1 || q < 0 || w[p] != t->merge_left[r] || w[q] != t->merge_right[r])
            continue; /* stale */
        w[p] = t->merge_result[r];
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        prev[q] = -2;
        int r2;
        if (prev[p] >= 0 && (r2 = pair_rank(t, w[prev[p]], w[p])) != NO_RANK)
            heap_push(heap, &hn, ((uint64_t)r2 << 32) | (uint32_t)prev[p]);
        if (next[p] >= 0 && (r2 = pair_rank(t, w[p], w[next[p]])) != NO_RANK)
            heap_push(heap, &hn, ((uint64_t)r2 << 32) | (uint32_t)p);
    }
    int out = 0;
    for (int k = 0; k >= 0; k = next[k]) w[out++] = w[k];
    free(buf);
    free(heap);
    return out;
}

/* Pre-tokens of up to this many bytes use the naive loop (faster when short). */
#define BPE_NAIVE_MAX 16

int bpe_merge_ids(const BPE *t, int *ids, int n, int naive) {
    ASSERT(n >= 0);
    if (n < 2 || t->num_merges == 0) return n;
    return naive ? merge_naive(t, ids, n) : merge_heap(t, ids, n);
}

// ---- encode / decode -----------------------------------------------------------------

static void ids_reserve(int **ids, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    *ids = xrealloc(*ids, c * sizeof(int));
    *cap = c;
}

/* Encode text with no special tokens in it: pre-token by pre-token, appending at n. */
static size_t encode_plain(const BPE *t, const unsigned char *s, size_t len, int **ids,
                           size_t *cap, size_t n) {
    size_t i = 0, run_end = 0;
    while (i < len) {
        size_t j = t->pretok == BPE_PRETOK_GPT2 ? bpe_pretoken_end((const char *)s, len, i)
                   : t->pretok == BPE_PRETOK_DIGITS
                       ? bpe_pretoken_end_digits((const char *)s, len, i, &run_end)
                       : bpe_pretoken_end_llama3((const char *)s, len, i,
                                                 t->pretok == BPE_PRETOK_LLAMA3 ? 3 : 1);
        size_t m = j - i;
        ASSERT(m < (size_t)INT_MAX);
        ids_reserve(ids, cap, n + m);
        int *w = *ids + n;
        if (t->ignore_merges && m > 1) { /* HF: a pre-token that is a token is that token */
            IdMap vm = {t->vocab_slot, t->vocab_cap, 0};
            int id = idmap_find(&vm, t->tok_data, t->tok_off, s + i, m);
            if (id >= 0) {
                w[0] = id;
                n++;
                i = j;
                continue;
            }
        }
        for (size_t k = 0; k < m; k++) w[k] = t->byte_id[s[i + k]];
        if (m > 1 && t->num_merges > 0 && !t->hf_merge_order)
            m = (size_t)(m <= BPE_NAIVE_MAX ? merge_naive(t, w, (int)m)
                                            : merge_heap(t, w, (int)m));
        else if (m > 1 && t->num_merges > 0)
            m = (size_t)(m <= BPE_NAIVE_MAX ? merge_naive_hf(t, w, (int)m)
                                            : merge_heap_hf(t, w, (int)m));
        n += m;
        i = j;
    }
    return n;
}

/* The earliest special token string at or after `from` (the longest on a tie): its
 * position in *at and its id, or -1. The specials are eos_id and pad_id (bpe.h). */
static int find_special(const BPE *t, const unsigned char *s, size_t len, size_t from,
                        size_t *at) {
    int best = -1;
    size_t best_at = len, best_len = 0;
    int cand[2] = {t->eos_id, t->pad_id};
    for (int c = 0; c < (t->pad_id != t->eos_id ? 2 : 1); c++) {
        int id = cand[c];
        size_t tl = t->tok_off[id + 1] - t->tok_off[id];
        if (tl == 0 || tl > len - from) continue;
        const unsigned char *p = memmem(s + from, len - from, t->tok_data + t->tok_off[id], tl);
        if (!p) continue;
        size_t pos = (size_t)(p - s);
        if (pos < best_at || (pos == best_at && tl > best_len)) {
            best = id;
            best_at = pos;
            best_len = tl;
        }
    }
    *at = best_at;
    return best;
}

/* The earliest added token at or after `from`, the longest one there (HF's leftmost-
 * longest match); special ones only with BPE_ENCODE_SPECIAL. Its position in *at, its id
 * returned, or -1. added_id is sorted longest first, so the first hit at a position wins. */
static int find_added(const BPE *t, const unsigned char *s, size_t len, size_t from,
                      unsigned flags, size_t *at) {
    for (size_t p = from; p < len; p++) {
        if (!t->added_first[s[p]]) continue;
        for (int k = 0; k < t->n_added; k++) {
            int id = t->added_id[k];
            const unsigned char *c = t->tok_data + t->tok_off[id];
            size_t cl = t->tok_off[id + 1] - t->tok_off[id];
            if (c[0] != s[p] || cl > len - p) continue;
            if (t->tok_special[id] && !(flags & BPE_ENCODE_SPECIAL)) continue;
            if (memcmp(c, s + p, cl) == 0) {
                *at = p;
                return id;
            }
        }
    }
    *at = len;
    return -1;
}

/* A stretch of text between added tokens: NFC if asked for, then pre-tokens and merges. */
static size_t encode_section(const BPE *t, const unsigned char *s, size_t len, int **ids,
                             size_t *cap, size_t n) {
    size_t nl;
    char *norm = t->nfc ? unicode_nfc((const char *)s, len, &nl) : NULL;
    if (!norm) return encode_plain(t, s, len, ids, cap, n);
    n = encode_plain(t, (const unsigned char *)norm, nl, ids, cap, n);
    free(norm);
    return n;
}

/* tokenizer.json tokenizers (hftok.h): added tokens are cut out of the raw text first. */
static size_t encode_hf(const BPE *t, const unsigned char *s, size_t len, unsigned flags,
                        int **ids, size_t *cap) {
    size_t n = 0, i = 0;
    while (i < len) {
        size_t at;
        int id = find_added(t, s, len, i, flags, &at);
        n = encode_section(t, s + i, at - i, ids, cap, n);
        if (id < 0) break;
        ids_reserve(ids, cap, n + 1);
        (*ids)[n++] = id;
        i = at + (t->tok_off[id + 1] - t->tok_off[id]);
    }
    return n;
}

size_t bpe_encode(const BPE *t, const char *text, size_t len, unsigned flags, int **ids,
                  size_t *cap) {
    ASSERT(t && t->vocab_size > 0);
    const unsigned char *s = (const unsigned char *)text;
    if (t->n_added > 0) return encode_hf(t, s, len, flags, ids, cap);
    if (!(flags & BPE_ENCODE_SPECIAL)) return encode_plain(t, s, len, ids, cap, 0);
    size_t n = 0, i = 0;
    while (i < len) {
        size_t at;
        int sp = find_special(t, s, len, i, &at);
        if (sp < 0) return encode_plain(t, s + i, len - i, ids, cap, n);
        n = encode_plain(t, s + i, at - i, ids, cap, n);
        ids_reserve(ids, cap, n + 1);
        (*ids)[n++] = sp;
        i = at + (t->tok_off[sp + 1] - t->tok_off[sp]);
    }
    return n;
}

/* Rewrite in[0..n) as valid UTF-8, each maximal invalid subpart replaced by U+FFFD (the
 * WHATWG "UTF-8 decode" algorithm that JavaScript's TextDecoder implements). out needs
 * 3n + 1 bytes; returns the length. */
static size_t utf8_replace_invalid(unsigned char *out, const unsigned char *in, size_t n) {
    size_t o = 0;
    int need = 0, seen = 0;
    unsigned lower = 0x80, upper = 0xBF;
    uint32_t cp = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned b = in[i];
        if (need == 0) {
            if (b <= 0x7F) {
                out[o++] = (unsigned char)b;
            } else if (b >= 0xC2 && b <= 0xDF) {
                need = 1, cp = b & 0x1F;
            } else if (b >= 0xE0 && b <= 0xEF) {
                if (b == 0xE0) lower = 0xA0;
                if (b == 0xED) upper = 0x9F;
                need = 2, cp = b & 0x0F;
            } else if (b >= 0xF0 && b <= 0xF4) {
                if (b == 0xF0) lower = 0x90;
                if (b == 0xF4) upper = 0x8F;
                need = 3, cp = b & 0x07;
            } else {
                o += utf8_put(out + o, 0xFFFD);
            }
            continue;
        }
        if (b < lower || b > upper) {
            /* the sequence so far is one error; b starts over */
            need = seen = 0, cp = 0, lower = 0x80, upper = 0xBF;
            o += utf8_put(out + o, 0xFFFD);
            i--;
            continue;
        }
        lower = 0x80, upper = 0xBF;
        cp = (cp << 6) | (b & 0x3F);
        if (++seen == need) {
            o += utf8_put(out + o, cp);
            need = seen = 0, cp = 0;
        }
    }
    if (need) o += utf8_put(out + o, 0xFFFD);
    return o;
}

int bpe_decode(const BPE *t, const int *ids, size_t n, unsigned flags, char **out,
               size_t *out_len, char *err) {
    ASSERT(t && t->vocab_size > 0);
    *out = NULL;
    if (out_len) *out_len = 0;
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        if (ids[k] < 0 || ids[k] >= t->vocab_size)
            return errf(err, "bpe_decode: token id %d at position %zu is out of range [0, %d)",
                        ids[k], k, t->vocab_size);
        if ((flags & BPE_DECODE_SKIP_SPECIAL) && t->tok_special[ids[k]]) continue;
        total += t->tok_off[ids[k] + 1] - t->tok_off[ids[k]];
    }
    unsigned char *raw = xmalloc(total + 1);
    size_t o = 0;
    for (size_t k = 0; k < n; k++) {
        if ((flags & BPE_DECODE_SKIP_SPECIAL) && t->tok_special[ids[k]]) continue;
        size_t l = t->tok_off[ids[k] + 1] - t->tok_off[ids[k]];
        memcpy(raw + o, t->tok_data + t->tok_off[ids[k]], l);
        o += l;
    }
    raw[o] = 0;
    if (flags & BPE_DECODE_REPLACE_INVALID) {
        unsigned char *fixed = xmalloc(3 * o + 1);
        o = utf8_replace_invalid(fixed, raw, o);
        fixed[o] = 0;
        free(raw);
        raw = fixed;
    }
    *out = (char *)raw;
    if (out_len) *out_len = o;
    return 0;
}

const unsigned char *bpe_token_bytes(const BPE *t, int id, size_t *len) {
    if (id < 0 || id >= t->vocab_size) return NULL;
    if (len) *len = t->tok_off[id + 1] - t->tok_off[id];
    return t->tok_data + t->tok_off[id];
}

int bpe_is_special(const BPE *t, int id) {
    return id >= 0 && id < t->vocab_size && t->tok_special[id];
}

void bpe_free(BPE *t) {
    if (!t) return;
    free(t->tok_off);
    free(t->tok_data);
    free(t->tok_special);
    free(t->merge_left);
    free(t->merge_right);
    free(t->merge_result);
    free(t->pair_key);
    free(t->pair_rank);
    free(t->added_id);
    free(t->vocab_slot);
    memset(t, 0, sizeof *t);
}

// ---- building and loading ------------------------------------------------------------

static void pair_table_init(BPE *t, size_t expected) {
    t->pair_cap = 16;
    while (t->pair_cap < expected * 2) t->pair_cap <<= 1;
    t->pair_key = xmalloc(t->pair_cap * sizeof(uint64_t));
    t->pair_rank = xmalloc(t->pair_cap * sizeof(int));
    for (size_t k = 0; k < t->pair_cap; k++) t->pair_key[k] = PAIR_EMPTY;
}

/* Insert (a,b) -> rank; returns -1, or the rank already there (then nothing changes).
 * The table must have room (sized for all merges up front). */
static int pair_table_put(BPE *t, int a, int b, int rank) {
    uint64_t key = pair_key(a, b);
    size_t mask = t->pair_cap - 1, h = pair_slot(key, mask);
    while (t->pair_key[h] != PAIR_EMPTY) {
        if (t->pair_key[h] == key) return t->pair_rank[h];
        h = (h + 1) & mask;
    }
    t->pair_key[h] = key;
    t->pair_rank[h] = rank;
    return -1;
}

/* Decode a byte-level string (UTF-8 of bytes_to_unicode code points) into out (room for
 * n bytes). Returns the byte count, or -1 with *bad the first code point that is not one
 * of the 256 (UINT32_MAX for invalid UTF-8). */
static long from_byte_level(const char *s, size_t n, unsigned char *out, uint32_t *bad) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp;
        i += utf8_next(u, n, i, &cp);
        int b = cp == UINT32_MAX ? -1 : bpe_unicode_to_byte(cp);
        if (b < 0) {
            *bad = cp;
            return -1;
        }
        out[o++] = (unsigned char)b;
    }
    return (long)o;
}

/* Append the byte-level form of bytes p[0..n) to a growing buffer. */
typedef struct {
    char *p;
    size_t n, cap;
} StrBuf;

static void sb_reserve(StrBuf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return;
    size_t c = b->cap ? b->cap : 256;
    while (c < b->n + extra + 1) c *= 2;
    b->p = xrealloc(b->p, c);
    b->cap = c;
}

static void sb_append(StrBuf *b, const void *p, size_t n) {
    sb_reserve(b, n);
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_append_byte_level(StrBuf *b, const unsigned char *p, size_t n) {
    sb_reserve(b, 2 * n);
    for (size_t k = 0; k < n; k++)
        b->n += utf8_put((unsigned char *)b->p + b->n, bpe_byte_to_unicode(p[k]));
    b->p[b->n] = 0;
}

/* For error messages: at most 60 bytes of s, control characters as '?'. */
static const char *err_snip(const char *s, size_t n, char buf[64]) {
    size_t k = 0;
    for (; k < n && k < 60; k++) buf[k] = (unsigned char)s[k] < 32 ? '?' : s[k];
    buf[k] = 0;
    return buf;
}

/* Set eos_id / pad_id from tok_special and the token strings. -1 with err if the special
 * tokens break the convention of bpe.h. */
static int resolve_specials(BPE *t, const char *where, char *err) {
    size_t eos_len = strlen(BPE_EOS_TOKEN);
    int eos = -1, pad = -1;
    for (int id = 0; id < t->vocab_size; id++) {
        if (!t->tok_special[id]) continue;
        size_t l = t->tok_off[id + 1] - t->tok_off[id];
        if (l == eos_len && memcmp(t->tok_data + t->tok_off[id], BPE_EOS_TOKEN, l) == 0) {
            eos = id;
        } else if (pad >= 0) {
            char a[64], b[64];
            return errf(err,
                        "%s: tokens \"%s\" (id %d) and \"%s\" (id %d) are neither bytes nor "
                        "merge results; only " BPE_EOS_TOKEN " and one pad token may be special "
                        "(remove the extra entries or add the merges that produce them)",
                        where, err_snip((const char *)t->tok_data + t->tok_off[pad],
                                        t->tok_off[pad + 1] - t->tok_off[pad], a),
                        pad, err_snip((const char *)t->tok_data + t->tok_off[id], l, b), id);
        } else {
            pad = id;
        }
    }
    if (eos < 0)
        return errf(err,
                    "%s: no special token \"" BPE_EOS_TOKEN "\" (GPT-2 vocabularies end with it; "
                    "add it with the next free id)",
                    where);
    t->eos_id = eos;
    t->pad_id = pad >= 0 ? pad : eos;
    return 0;
}

/* The loader's state, shared by the two file formats (vocab.json + merges.txt here,
 * tokenizer.json in hftok.c): the model vocabulary decoded from byte-level form, a map
 * from token bytes to ids, and the merges read so far. */
struct BPEBuilder {
    BPE t;
    size_t n;                 /* model vocabulary entries, ids 0..n-1 */
    const char **keys;        /* (n) byte-level strings, borrowed from the caller */
    const char *vname;
    unsigned char *dec;       /* decoded keys: dec[dec_off[id] .. dec_off[id+1]) */
    size_t *dec_off, total;
    unsigned char *decodable; /* (n) key is all byte-level symbols */
    unsigned char *avail;     /* (n) a byte or the result of a merge so far */
    unsigned char *is_result; /* (n) */
    unsigned char *part;      /* scratch for one merge's two parts */
    size_t part_cap;
    int *merge_num;           /* (merge_cap) line or index of each merge, for duplicates */
    size_t merge_cap;
    IdMap map;
    int any_order;            /* merge parts need not be made by earlier merges (HF) */
};

void bpe_builder_any_order(BPEBuilder *b) {
    b->any_order = 1;
}

void bpe_builder_free(BPEBuilder *b) {
    if (!b) return;
    free(b->dec);
    free(b->dec_off);
    free(b->decodable);
    free(b->avail);
    free(b->is_result);
    free(b->part);
    free(b->merge_num);
    idmap_free(&b->map);
    bpe_free(&b->t);
    free(b);
}

BPEBuilder *bpe_builder_new(const char *const *keys, size_t n, const char *vname, char *err) {
    BPEBuilder *b = xcalloc(1, sizeof *b);
    b->n = n;
    b->keys = (const char **)keys;
    b->vname = vname;
    /* byte-level decode of every key; undecodable keys can only be special tokens */
    for (size_t id = 0; id < n; id++) b->total += strlen(keys[id]);
    b->dec = xmalloc(b->total + 1);
    b->dec_off = xmalloc((n + 1) * sizeof *b->dec_off);
    b->decodable = xcalloc(n, 1);
    b->dec_off[0] = 0;
    for (size_t id = 0; id < n; id++) {
        uint32_t bad;
        long l = from_byte_level(keys[id], strlen(keys[id]), b->dec + b->dec_off[id], &bad);
        b->decodable[id] = l >= 0;
        b->dec_off[id + 1] = b->dec_off[id] + (l > 0 ? (size_t)l : 0);
    }
    BPE *t = &b->t;
    for (int c = 0; c < 256; c++) t->byte_id[c] = -1;
    idmap_init(&b->map, n);
    for (size_t id = 0; id < n; id++) {
        if (!b->decodable[id]) continue;
        if (b->dec_off[id + 1] - b->dec_off[id] == 1) t->byte_id[b->dec[b->dec_off[id]]] = (int)id;
        idmap_put(&b->map, b->dec, b->dec_off, (int)id);
    }
    for (int c = 0; c < 256; c++) {
        if (t->byte_id[c] < 0) {
            unsigned char u[4];
            size_t ul = utf8_put(u, bpe_byte_to_unicode((unsigned char)c));
            errf(err, "%s: no token for byte 0x%02X (written \"%.*s\", U+%04X, in byte-level form)",
                 vname, c, (int)ul, (const char *)u, bpe_byte_to_unicode((unsigned char)c));
            bpe_builder_free(b);
            return NULL;
        }
    }
    b->avail = xcalloc(n, 1);
    b->is_result = xcalloc(n, 1);
    for (int c = 0; c < 256; c++) b->avail[t->byte_id[c]] = 1;
    return b;
}

void bpe_builder_reserve_merges(BPEBuilder *b, size_t max_merges) {
    BPE *t = &b->t;
    ASSERT(!t->pair_key); /* once, before the first merge */
    if (max_merges == 0) max_merges = 1;
    pair_table_init(t, max_merges);
    t->merge_left = xmalloc(max_merges * sizeof(int));
    t->merge_right = xmalloc(max_merges * sizeof(int));
    t->merge_result = xmalloc(max_merges * sizeof(int));
    b->merge_num = xmalloc(max_merges * sizeof(int));
    b->merge_cap = max_merges;
}

int bpe_builder_merge(BPEBuilder *b, const char *left, size_t ll, const char *right, size_t rl,
                      const char *where, const char *num_label, int num, char *err) {
    BPE *t = &b->t;
    ASSERT(t->pair_key && (size_t)t->num_merges < b->merge_cap);
    if (ll + rl > b->part_cap) {
        b->part_cap = 2 * (ll + rl) + 64;
        b->part = xrealloc(b->part, b->part_cap);
    }
    const char *f[2] = {left, right};
    size_t fl[2] = {ll, rl};
    char s1[64], s2[64];
    int ids[2];
    long pl[2];
    for (int side = 0; side < 2; side++) {
        uint32_t bad;
        unsigned char *dst = b->part + (side ? (size_t)pl[0] : 0);
        pl[side] = from_byte_level(f[side], fl[side], dst, &bad);
        if (pl[side] < 0) {
            if (bad == UINT32_MAX)
                return errf(err, "%s: \"%s\" is not valid UTF-8", where,
                            err_snip(f[side], fl[side], s1));
            return errf(err,
                        "%s: \"%s\" contains U+%04X, which is not one of the 256 byte-level "
                        "symbols (bytes_to_unicode)",
                        where, err_snip(f[side], fl[side], s1), bad);
        }
        ids[side] = idmap_find(&b->map, b->dec, b->dec_off, dst, (size_t)pl[side]);
        if (ids[side] < 0)
            return errf(err, "%s: \"%s\" is not in the vocabulary %s", where,
                        err_snip(f[side], fl[side], s1), b->vname);
        if (!b->any_order && !b->avail[ids[side]])
            return errf(err,
                        "%s: \"%s\" is neither a byte nor the result of an earlier merge (merges "
                        "must be in rank order)",
                        where, err_snip(f[side], fl[side], s1));
    }
    int res = idmap_find(&b->map, b->dec, b->dec_off, b->part, (size_t)(pl[0] + pl[1]));
    if (res < 0)
        return errf(err, "%s: the merge result \"%s%s\" is not in the vocabulary %s", where,
                    err_snip(f[0], fl[0], s1), err_snip(f[1], fl[1], s2), b->vname);
    int r = t->num_merges;
    int prev_rank = pair_table_put(t, ids[0], ids[1], r);
    if (prev_rank >= 0)
        return errf(err, "%s: duplicate merge \"%s %s\" (first on %s %d)", where,
                    err_snip(f[0], fl[0], s1), err_snip(f[1], fl[1], s2), num_label,
                    b->merge_num[prev_rank]);
    t->merge_left[r] = ids[0];
    t->merge_right[r] = ids[1];
    t->merge_result[r] = res;
    b->merge_num[r] = num;
    b->avail[res] = b->is_result[res] = 1;
    t->num_merges++;
    return 0;
}

/* tok_off/tok_data for ids 0..n-1 (GPT-2 files): specials as written, the rest as bytes. */
static void builder_tokens_gpt2(BPEBuilder *b) {
    BPE *t = &b->t;
    size_t n = b->n;
    t->vocab_size = (int)n;
    t->tok_special = xcalloc(n, 1);
    t->tok_off = xmalloc((n + 1) * sizeof(size_t));
    t->tok_data = xmalloc(b->total + 1);
    t->tok_off[0] = 0;
    for (size_t id = 0; id < n; id++) {
        int is_byte = b->decodable[id] && b->dec_off[id + 1] - b->dec_off[id] == 1;
        t->tok_special[id] = !is_byte && !b->is_result[id];
        const void *src = t->tok_special[id] ? (const void *)b->keys[id]
                                             : (const void *)(b->dec + b->dec_off[id]);
        size_t l = t->tok_special[id] ? strlen(b->keys[id]) : b->dec_off[id + 1] - b->dec_off[id];
        memcpy(t->tok_data + t->tok_off[id], src, l);
        t->tok_off[id + 1] = t->tok_off[id] + l;
    }
}

int bpe_builder_finish(BPEBuilder *b, BPE *out, char *err) {
    if (!b->t.pair_key) bpe_builder_reserve_merges(b, 1);
    builder_tokens_gpt2(b);
    if (resolve_specials(&b->t, b->vname, err)) return -1;
    *out = b->t;
    memset(&b->t, 0, sizeof b->t);
    return 0;
}

/* Added tokens' ids sorted by content length, longest first (leftmost-longest match). */
static const BPE *added_sort_t;
static int added_cmp(const void *x, const void *y) {
    const BPE *t = added_sort_t;
    int a = *(const int *)x, c = *(const int *)y;
    size_t la = t->tok_off[a + 1] - t->tok_off[a], lc = t->tok_off[c + 1] - t->tok_off[c];
    return la != lc ? (la < lc ? 1 : -1) : (a > c) - (a < c);
}

/* The first added token whose content is one of names[], else the first special one. */
static int pick_eos(const BPE *t, const BPEAddedToken *added, int n_added) {
    static const char *names[] = {BPE_EOS_TOKEN, "<|end_of_text|>", "</s>", "<|im_end|>"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        for (int i = 0; i < n_added; i++)
            if (added[i].special && !strcmp(added[i].content, names[k])) return added[i].id;
    for (int i = 0; i < n_added; i++)
        if (added[i].special) return added[i].id;
    (void)t;
    return -1;
}

int bpe_builder_finish_hf(BPEBuilder *b, const BPEAddedToken *added, int n_added,
                          const char *aname, BPE *out, char *err) {
    BPE *t = &b->t;
    if (!t->pair_key) bpe_builder_reserve_merges(b, 1);
    size_t n = b->n, size = n, extra = 0;
    char s1[64], s2[64];
    for (int i = 0; i < n_added; i++) {
        const BPEAddedToken *a = &added[i];
        size_t cl = strlen(a->content);
        if (a->id < 0 || a->id >= BPE_MAX_VOCAB)
            return errf(err, "%s[%d]: id %d is outside 0..%d", aname, i, a->id, BPE_MAX_VOCAB - 1);
        if (cl == 0) return errf(err, "%s[%d]: \"content\" is empty", aname, i);
        if ((size_t)a->id < n && strcmp(b->keys[a->id], a->content) != 0)
            return errf(err, "%s[%d]: \"%s\" has id %d, which model.vocab gives to \"%s\"", aname,
                        i, err_snip(a->content, cl, s1), a->id,
                        err_snip(b->keys[a->id], strlen(b->keys[a->id]), s2));
        if ((size_t)a->id >= size) size = (size_t)a->id + 1;
        extra += cl;
    }
    int *owner = xmalloc(size * sizeof(int)); /* added token index per id, -1 none */
    for (size_t id = 0; id < size; id++) owner[id] = -1;
    for (int i = 0; i < n_added; i++) {
        if (owner[added[i].id] >= 0) {
            int j = owner[added[i].id];
            free(owner);
            return errf(err, "%s[%d] and %s[%d] both have id %d (ids must be unique)", aname, j,
                        aname, i, added[i].id);
        }
        owner[added[i].id] = i;
    }
    for (size_t id = n; id < size; id++)
        if (owner[id] < 0) {
            free(owner);
            return errf(err,
                        "%s: no token has id %zu (model.vocab has ids 0..%zu; added tokens must "
                        "continue them without gaps)",
                        aname, id, n - 1);
        }
    t->vocab_size = (int)size;
    t->tok_special = xcalloc(size, 1);
    t->tok_off = xmalloc((size + 1) * sizeof(size_t));
    t->tok_data = xmalloc(b->total + extra + 1);
    t->tok_off[0] = 0;
    for (size_t id = 0; id < size; id++) {
        const char *src;
        size_t l;
        if (owner[id] >= 0) { /* an added token decodes to its content, as HF does */
            src = added[owner[id]].content, l = strlen(src);
            t->tok_special[id] = (unsigned char)(added[owner[id]].special != 0);
        } else if (b->decodable[id]) {
            src = (const char *)b->dec + b->dec_off[id], l = b->dec_off[id + 1] - b->dec_off[id];
        } else {
            src = b->keys[id], l = strlen(src);
        }
        memcpy(t->tok_data + t->tok_off[id], src, l);
        t->tok_off[id + 1] = t->tok_off[id] + l;
    }
    /* token bytes -> id over the model vocabulary (added tokens aside), for ignore_merges */
    t->vocab_cap = 16;
    while (t->vocab_cap < 2 * n) t->vocab_cap <<= 1;
    IdMap m = {xmalloc(t->vocab_cap * sizeof(int)), t->vocab_cap, 0};
    memset(m.slot, 0xff, m.cap * sizeof(int));
    for (size_t id = 0; id < n; id++)
        if (b->decodable[id] && owner[id] < 0) idmap_put_raw(&m, t->tok_data, t->tok_off, (int)id);
    t->vocab_slot = m.slot;
    t->hf_merge_order = 1;
    free(owner);
    t->n_added = n_added;
    t->added_id = xmalloc((size_t)(n_added ? n_added : 1) * sizeof(int));
    for (int i = 0; i < n_added; i++) t->added_id[i] = added[i].id;
    added_sort_t = t;
    qsort(t->added_id, (size_t)n_added, sizeof(int), added_cmp);
    for (int i = 0; i < n_added; i++) t->added_first[(unsigned char)added[i].content[0]] = 1;
    t->eos_id = t->pad_id = pick_eos(t, added, n_added);
    if (t->eos_id < 0)
        return errf(err,
                    "%s: no special token (an end-of-text token such as \"" BPE_EOS_TOKEN
                    "\" or \"<|end_of_text|>\" with \"special\": true is needed)",
                    aname);
    *out = *t;
    memset(t, 0, sizeof *t);
    return 0;
}

/* The loader proper for vocab.json text (vlen bytes) and merges.txt text (mlen bytes). */
static int load_impl(BPE *out, const char *vocab, size_t vlen, const char *vname,
                     const char *merges, size_t mlen, const char *mname, char *err) {
    memset(out, 0, sizeof *out);
    json_t *root = NULL;
    const char **keys = NULL;
    BPEBuilder *b = NULL;
    size_t n = 0;
    char s1[64], s2[64];

    json_error_t je;
    root = json_loadb(vocab, vlen, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        errf(err, "%s:%d:%d: invalid JSON: %s", vname, je.line, je.column, je.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        errf(err, "%s: expected a JSON object {\"token\": id, ...}", vname);
        goto fail;
    }
    n = json_object_size(root);
    if (n < 257 || n > BPE_MAX_VOCAB) {
        errf(err,
             "%s: %zu entries; a byte-level vocabulary has the 256 byte tokens and "
             "\"" BPE_EOS_TOKEN "\" (at least 257) and at most %d",
             vname, n, BPE_MAX_VOCAB);
        goto fail;
    }
    keys = bpe_vocab_keys(root, vname, 0, err);
    if (!keys) goto fail;
    b = bpe_builder_new(keys, n, vname, err);
    if (!b) goto fail;

    /* merges: one "left right" per line, rank = order */
    size_t max_lines = 1;
    for (size_t k = 0; k < mlen; k++) max_lines += merges[k] == '\n';
    bpe_builder_reserve_merges(b, max_lines);
    size_t pos = 0;
    for (int line = 1; pos < mlen; line++) {
        const char *ls = merges + pos;
        const char *nl = memchr(ls, '\n', mlen - pos);
        size_t ll = nl ? (size_t)(nl - ls) : mlen - pos;
        pos += ll + (nl ? 1 : 0);
        if (ll > 0 && ls[ll - 1] == '\r') ll--;
        if (line == 1 && ll > 0 && ls[0] == '#') continue; /* "#version: 0.2" */
        const char *f[3];
        size_t fl[3];
        int nf = 0;
        for (size_t k = 0; k < ll;) {
            while (k < ll && (ls[k] == ' ' || ls[k] == '\t')) k++;
            if (k >= ll) break;
            size_t st = k;
            while (k < ll && ls[k] != ' ' && ls[k] != '\t') k++;
            if (nf < 3) f[nf] = ls + st, fl[nf] = k - st;
            nf++;
        }
        if (nf == 0) continue; /* blank line */
        if (nf != 2) {
            errf(err, "%s:%d: expected two tokens \"left right\", found %d field%s", mname, line,
                 nf, nf == 1 ? "" : "s");
            goto fail;
        }
        char where[ERRBUF_LEN / 2];
        snprintf(where, sizeof where, "%s:%d", mname, line);
        if (bpe_builder_merge(b, f[0], fl[0], f[1], fl[1], where, "line", line, err)) goto fail;
    }
    if (bpe_builder_finish(b, out, err)) goto fail;
    (void)s1, (void)s2;
    bpe_builder_free(b);
    json_decref(root);
    free(keys);
    return 0;
fail:
    bpe_builder_free(b);
    json_decref(root);
    free(keys);
    memset(out, 0, sizeof *out);
    return -1;
}

const char **bpe_vocab_keys(struct json_t *obj, const char *vname, size_t min_entries, char *err) {
    size_t n = json_object_size(obj);
    char s1[64], s2[64];
    if (n < min_entries) {
        errf(err, "%s: %zu entries; a byte-level vocabulary has at least the 256 byte tokens",
             vname, n);
        return NULL;
    }
    const char **keys = xcalloc(n ? n : 1, sizeof *keys);
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        if (!json_is_integer(val)) {
            errf(err, "%s: token \"%s\": the id must be an integer", vname,
                 err_snip(key, strlen(key), s1));
            goto fail;
        }
        json_int_t id = json_integer_value(val);
        if (id < 0 || id >= (json_int_t)n) {
            errf(err,
                 "%s: token \"%s\" has id %lld, outside 0..%zu (ids must be dense: 0..N-1 for "
                 "N entries)",
                 vname, err_snip(key, strlen(key), s1), (long long)id, n - 1);
            goto fail;
        }
        if (keys[id]) {
            errf(err, "%s: tokens \"%s\" and \"%s\" both have id %lld (ids must be unique)",
                 vname, err_snip(keys[id], strlen(keys[id]), s1),
                 err_snip(key, strlen(key), s2), (long long)id);
            goto fail;
        }
        keys[id] = key;
    }
    /* every id in 0..n-1 was seen once: n distinct ids in a range of n values */
    return keys;
fail:
    free(keys);
    return NULL;
}

int bpe_load_strings(BPE *t, const char *vocab_json, const char *merges_txt, char *err) {
    return load_impl(t, vocab_json, strlen(vocab_json), "vocab", merges_txt, strlen(merges_txt),
                     "merges", err);
}

int bpe_load_files(BPE *t, const char *vocab_path, const char *merges_path, char *err) {
    memset(t, 0, sizeof *t);
    size_t vl, ml;
    char *v = file_read_all(vocab_path, &vl, err);
    if (!v) return -1;
    char *m = file_read_all(merges_path, &ml, err);
    if (!m) {
        free(v);
        return -1;
    }
    int rc = load_impl(t, v, vl, vocab_path, m, ml, merges_path, err);
    free(v);
    free(m);
    return rc;
}

// ---- saving --------------------------------------------------------------------------

int bpe_save_strings(const BPE *t, char **vocab_json, char **merges_txt) {
    ASSERT(t && t->vocab_size > 0);
    json_t *obj = json_object();
    ASSERT(obj);
    StrBuf b = {0};
    for (int id = 0; id < t->vocab_size; id++) {
        const unsigned char *p = t->tok_data + t->tok_off[id];
        size_t l = t->tok_off[id + 1] - t->tok_off[id];
        b.n = 0;
        if (t->tok_special[id])
            sb_append(&b, p, l);
        else
            sb_append_byte_level(&b, p, l);
        if (json_object_setn_new_nocheck(obj, b.p, b.n, json_integer(id)) != 0)
            fatal("bpe_save_strings: jansson could not add token %d", id);
    }
    /* keys are unique: non-special keys by construction, specials checked at load/train */
    ASSERT(json_object_size(obj) == (size_t)t->vocab_size);
    *vocab_json = json_dumps(obj, JSON_PRESERVE_ORDER);
    ASSERT(*vocab_json);
    json_decref(obj);
    b.n = 0;
    sb_append(&b, "#version: 0.2\n", 14);
    for (int r = 0; r < t->num_merges; r++) {
        int a = t->merge_left[r], c = t->merge_right[r];
        sb_append_byte_level(&b, t->tok_data + t->tok_off[a], t->tok_off[a + 1] - t->tok_off[a]);
        sb_append(&b, " ", 1);
        sb_append_byte_level(&b, t->tok_data + t->tok_off[c], t->tok_off[c + 1] - t->tok_off[c]);
        sb_append(&b, "\n", 1);
    }
    *merges_txt = b.p;
    return 0;
}

int bpe_save_files(const BPE *t, const char *vocab_path, const char *merges_path, char *err) {
    char *v, *m;
    bpe_save_strings(t, &v, &m);
    int rc = file_write_atomic(vocab_path, v, strlen(v), err);
    if (rc == 0) rc = file_write_atomic(merges_path, m, strlen(m), err);
    free(v);
    free(m);
    return rc;
}

// ---- training ------------------------------------------------------------------------
// Words: the distinct pre-tokens of the corpus with their counts; each is a sequence of
// token ids (symbols), starting as bytes. Pairs: every adjacent (left, right) with its
// total count over words (weighted by word count) and the list of words it occurs in.
// A merge of (a, b) -> c visits only the words in (a, b)'s list: it subtracts the word's
// pairs, merges left to right, adds the new pairs, and records the word in the list of
// every pair that contains c (no other pair can gain occurrences). The best pair comes
// from a max-heap with lazy deletion: an entry whose count no longer matches is re-pushed
// with the current count when it surfaces; pairs whose count grew are pushed right away,
// so every pair always has an entry at least as large as its count and the first
// matching entry popped is the true maximum (ties: the rule in bpe.h).
// A merge can re-create a token string that exists ("abc" from (ab,c), later from (a,bc));
// the id is reused, and a pair that then reappears after it was merged is merged in the
// corpus again but not recorded twice: the encoder already merges it at its first rank.

typedef struct {
    int a, b;
    int64_t count;
    int *occ; /* words this pair occurs in (may list words that no longer contain it) */
    int nocc, capocc;
    int touched; /* merge step that last raised the count, for the heap push */
    int merged;  /* already recorded as a merge */
} TrainPair;

typedef struct {
    int64_t count;
    int pair;
} HeapEntry;

typedef struct {
    /* tokens: bytes in tdata[toff[id] .. toff[id+1]) */
    unsigned char *tdata;
    size_t tdata_n, tdata_cap;
    size_t *toff;
    int ntok, toff_cap;
    IdMap tmap;
    /* words */
    unsigned char *wdata;
    size_t wdata_n, wdata_cap;
    size_t *woff;
    int nword, woff_cap;
    IdMap wmap;
    int64_t *wcount;
    int *sym;        /* all words' symbols; word w at sym[woff[w] ..], length wlen[w] */
    int *wlen;
    int *wstamp;     /* last merge step that visited the word */
    /* pairs */
    TrainPair *pairs;
    int npairs, pairs_cap;
    uint64_t *pkey; /* open addressing: (a<<32|b) -> index in pval */
    int *pval;
    size_t pcap, pn;
    HeapEntry *heap;
    size_t nheap, heap_cap;
    /* merges */
    int *ml, *mr, *mres;
    int nmerge, mcap;
} Trainer;

static int tr_add_token(Trainer *T, const unsigned char *p, size_t n) {
    if (T->tdata_n + n > T->tdata_cap) {
        T->tdata_cap = (T->tdata_n + n) * 2 + 256;
        T->tdata = xrealloc(T->tdata, T->tdata_cap);
    }
    if (T->ntok + 2 > T->toff_cap) {
        T->toff_cap = T->toff_cap ? 2 * T->toff_cap : 1024;
        T->toff = xrealloc(T->toff, (size_t)T->toff_cap * sizeof(size_t));
    }
    memcpy(T->tdata + T->tdata_n, p, n);
    T->toff[T->ntok] = T->tdata_n;
    T->tdata_n += n;
    T->toff[T->ntok + 1] = T->tdata_n;
    int id = T->ntok++;
    idmap_put(&T->tmap, T->tdata, T->toff, id);
    return id;
}

static void tr_count_word(Trainer *T, const unsigned char *p, size_t n) {
    ASSERT(n < (size_t)INT_MAX); /* symbol counts are ints */
    int w = idmap_find(&T->wmap, T->wdata, T->woff, p, n);
    if (w < 0) {
        if (T->wdata_n + n > T->wdata_cap) {
            T->wdata_cap = (T->wdata_n + n) * 2 + 4096;
            T->wdata = xrealloc(T->wdata, T->wdata_cap);
        }
        if (T->nword + 2 > T->woff_cap) {
            T->woff_cap = T->woff_cap ? 2 * T->woff_cap : 4096;
            T->woff = xrealloc(T->woff, (size_t)T->woff_cap * sizeof(size_t));
            T->wcount = xrealloc(T->wcount, (size_t)T->woff_cap * sizeof(int64_t));
        }
        memcpy(T->wdata + T->wdata_n, p, n);
        T->woff[T->nword] = T->wdata_n;
        T->wdata_n += n;
        T->woff[T->nword + 1] = T->wdata_n;
        w = T->nword++;
        T->wcount[w] = 0;
        idmap_put(&T->wmap, T->wdata, T->woff, w);
    }
    T->wcount[w]++;
}

/* Count the pre-tokens of one text, with the special-token strings cut out. */
static void tr_count_text(Trainer *T, const unsigned char *s, size_t len, const char **specials,
                          int nspecial) {
    size_t i = 0;
    while (i < len) {
        size_t cut = len, cut_len = 0;
        for (int k = 0; k < nspecial; k++) {
            size_t sl = strlen(specials[k]);
            const unsigned char *p = sl <= len - i ? memmem(s + i, len - i, specials[k], sl) : NULL;
            if (p && (size_t)(p - s) < cut) cut = (size_t)(p - s), cut_len = sl;
        }
        while (i < cut) {
            size_t j = bpe_pretoken_end((const char *)s, cut, i);
            tr_count_word(T, s + i, j - i);
            i = j;
        }
        i = cut + cut_len;
    }
}

/* Heap order: higher count first; on equal counts the smaller (left bytes, right bytes). */
static int tr_better(const Trainer *T, const HeapEntry *x, const HeapEntry *y) {
    if (x->count != y->count) return x->count > y->count;
    const TrainPair *p = &T->pairs[x->pair], *q = &T->pairs[y->pair];
    for (int side = 0; side < 2; side++) {
        int u = side ? p->b : p->a, v = side ? q->b : q->a;
        if (u == v) continue;
        size_t lu = T->toff[u + 1] - T->toff[u], lv = T->toff[v + 1] - T->toff[v];
        int c = memcmp(T->tdata + T->toff[u], T->tdata + T->toff[v], lu < lv ? lu : lv);
        if (c != 0) return c < 0;
        if (lu != lv) return lu < lv;
    }
    return 0; /* same pair */
}

static void tr_heap_push(Trainer *T, int64_t count, int pair) {
    if (T->nheap == T->heap_cap) {
        T->heap_cap = T->heap_cap ? 2 * T->heap_cap : 4096;
        T->heap = xrealloc(T->heap, T->heap_cap * sizeof(HeapEntry));
    }
    HeapEntry e = {count, pair};
    size_t i = T->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!tr_better(T, &e, &T->heap[p])) break;
        T->heap[i] = T->heap[p];
        i = p;
    }
    T->heap[i] = e;
}

static HeapEntry tr_heap_pop(Trainer *T) {
    HeapEntry top = T->heap[0], e = T->heap[--T->nheap];
    size_t i = 0, m = T->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && tr_better(T, &T->heap[c + 1], &T->heap[c])) c++;
        if (!tr_better(T, &T->heap[c], &e)) break;
        T->heap[i] = T->heap[c];
        i = c;
    }
    if (m > 0) T->heap[i] = e;
    return top;
}

static void tr_pmap_grow(Trainer *T) {
    size_t cap = T->pcap ? 2 * T->pcap : 1 << 16;
    uint64_t *key = xmalloc(cap * sizeof(uint64_t));
    int *val = xmalloc(cap * sizeof(int));
    for (size_t k = 0; k < cap; k++) key[k] = PAIR_EMPTY;
    for (size_t k = 0; k < T->pcap; k++) {
        if (T->pkey[k] == PAIR_EMPTY) continue;
        size_t h = pair_slot(T->pkey[k], cap - 1);
        while (key[h] != PAIR_EMPTY) h = (h + 1) & (cap - 1);
        key[h] = T->pkey[k];
        val[h] = T->pval[k];
    }
    free(T->pkey);
    free(T->pval);
    T->pkey = key;
    T->pval = val;
    T->pcap = cap;
}

/* Index of pair (a,b), created with count 0 if new. */
static int tr_pair(Trainer *T, int a, int b) {
    if ((T->pn + 1) * 2 > T->pcap) tr_pmap_grow(T);
    uint64_t key = pair_key(a, b);
    size_t mask = T->pcap - 1, h = pair_slot(key, mask);
    while (T->pkey[h] != PAIR_EMPTY) {
        if (T->pkey[h] == key) return T->pval[h];
        h = (h + 1) & mask;
    }
    if (T->npairs == T->pairs_cap) {
        T->pairs_cap = T->pairs_cap ? 2 * T->pairs_cap : 1 << 14;
        T->pairs = xrealloc(T->pairs, (size_t)T->pairs_cap * sizeof(TrainPair));
    }
    int idx = T->npairs++;
    TrainPair *p = &T->pairs[idx];
    memset(p, 0, sizeof *p);
    p->a = a, p->b = b, p->touched = -1;
    T->pkey[h] = key;
    T->pval[h] = idx;
    T->pn++;
    return idx;
}

static void tr_pair_add_occ(TrainPair *p, int w) {
    if (p->nocc > 0 && p->occ[p->nocc - 1] == w) return;
    if (p->nocc == p->capocc) {
        p->capocc = p->capocc ? 2 * p->capocc : 4;
        p->occ = xrealloc(p->occ, (size_t)p->capocc * sizeof(int));
    }
    p->occ[p->nocc++] = w;
}

static void tr_free(Trainer *T) {
    free(T->tdata);
    free(T->toff);
    idmap_free(&T->tmap);
    free(T->wdata);
    free(T->woff);
    idmap_free(&T->wmap);
    free(T->wcount);
    free(T->sym);
    free(T->wlen);
    free(T->wstamp);
    for (int k = 0; k < T->npairs; k++) free(T->pairs[k].occ);
    free(T->pairs);
    free(T->pkey);
    free(T->pval);
    free(T->heap);
    free(T->ml);
    free(T->mr);
    free(T->mres);
}

/* Merge step `step`: join the pair at index pi into a token everywhere in the corpus,
 * record the merge (once per pair), push the pairs whose counts grew. */
static void tr_merge(Trainer *T, int pi, int step, int **touched, int *cap_touched) {
    int a = T->pairs[pi].a, b = T->pairs[pi].b;
    size_t la = T->toff[a + 1] - T->toff[a], lb = T->toff[b + 1] - T->toff[b];
    unsigned char stackbuf[256];
    unsigned char *cat = la + lb <= sizeof stackbuf ? stackbuf : xmalloc(la + lb);
    memcpy(cat, T->tdata + T->toff[a], la);
    memcpy(cat + la, T->tdata + T->toff[b], lb);
    int c = idmap_find(&T->tmap, T->tdata, T->toff, cat, la + lb);
    if (c < 0) c = tr_add_token(T, cat, la + lb);
    if (cat != stackbuf) free(cat);
    if (T->nmerge == T->mcap) {
        T->mcap = T->mcap ? 2 * T->mcap : 1024;
        T->ml = xrealloc(T->ml, (size_t)T->mcap * sizeof(int));
        T->mr = xrealloc(T->mr, (size_t)T->mcap * sizeof(int));
        T->mres = xrealloc(T->mres, (size_t)T->mcap * sizeof(int));
    }
    if (!T->pairs[pi].merged) {
        T->pairs[pi].merged = 1;
        T->ml[T->nmerge] = a, T->mr[T->nmerge] = b, T->mres[T->nmerge] = c;
        T->nmerge++;
    }

    /* the list is not modified while we walk it: only pairs containing c gain words */
    int *occ = T->pairs[pi].occ, nocc = T->pairs[pi].nocc;
    int ntouched = 0;
    for (int k = 0; k < nocc; k++) {
        int w = occ[k];
        if (T->wstamp[w] == step) continue;
        T->wstamp[w] = step;
        int *s = T->sym + T->woff[w], n = T->wlen[w];
        int found = 0;
        for (int i = 0; i + 1 < n && !found; i++) found = s[i] == a && s[i + 1] == b;
        if (!found) continue;
        int64_t f = T->wcount[w];
        for (int i = 0; i + 1 < n; i++) {
            int q = tr_pair(T, s[i], s[i + 1]);
            T->pairs[q].count -= f;
            ASSERT(T->pairs[q].count >= 0);
        }
        int m = 0;
        for (int i = 0; i < n;) {
            if (i + 1 < n && s[i] == a && s[i + 1] == b) {
                s[m++] = c;
                i += 2;
            } else {
                s[m++] = s[i++];
            }
        }
        T->wlen[w] = m;
        for (int i = 0; i + 1 < m; i++) {
            int q = tr_pair(T, s[i], s[i + 1]);
            TrainPair *p = &T->pairs[q];
            p->count += f;
            if (s[i] == c || s[i + 1] == c) {
                tr_pair_add_occ(p, w);
                if (p->touched != step) {
                    p->touched = step;
                    if (ntouched == *cap_touched) {
                        *cap_touched = *cap_touched ? 2 * *cap_touched : 256;
                        *touched = xrealloc(*touched, (size_t)*cap_touched * sizeof(int));
                    }
                    (*touched)[ntouched++] = q;
                }
            }
        }
    }
    TrainPair *p = &T->pairs[pi];
    ASSERT(p->count == 0);
    free(p->occ);
    p->occ = NULL;
    p->nocc = p->capocc = 0;
    for (int k = 0; k < ntouched; k++) {
        int q = (*touched)[k];
        if (T->pairs[q].count > 0) tr_heap_push(T, T->pairs[q].count, q);
    }
}

static int train_impl(BPE *out, const char *const *texts, const size_t *lens, size_t n_texts,
                      const BPETrainConfig *cfg, char *err) {
    memset(out, 0, sizeof *out);
    const char *specials[2] = {BPE_EOS_TOKEN, cfg->pad_token};
    int nspecial = cfg->pad_token ? 2 : 1;
    if (cfg->pad_token) {
        size_t pl = strlen(cfg->pad_token);
        if (pl == 0) return errf(err, "bpe_train: the pad token is empty (give a string or none)");
        if (!utf8_valid(cfg->pad_token, pl, NULL))
            return errf(err, "bpe_train: the pad token is not valid UTF-8");
        if (strcmp(cfg->pad_token, BPE_EOS_TOKEN) == 0)
            return errf(err, "bpe_train: the pad token equals " BPE_EOS_TOKEN
                             "; give no pad token to pad with EOS");
    }
    if (cfg->vocab_size < 256 + nspecial || cfg->vocab_size > BPE_MAX_VOCAB)
        return errf(err, "bpe_train: vocab_size %d must be in %d..%d (256 bytes + %d special)",
                    cfg->vocab_size, 256 + nspecial, BPE_MAX_VOCAB, nspecial);
    int64_t min_freq = cfg->min_frequency < 1 ? 1 : cfg->min_frequency;
    double t0 = time_now();

    Trainer T;
    memset(&T, 0, sizeof T);
    idmap_init(&T.tmap, 4096);
    idmap_init(&T.wmap, 4096);
    for (int id = 0; id < 256; id++) { /* ids in GPT-2's byte order */
        int b = 0;
        while (byte_gpt2_rank((unsigned char)b) != id) b++;
        unsigned char ch = (unsigned char)b;
        tr_add_token(&T, &ch, 1);
    }
    size_t total_bytes = 0;
    for (size_t k = 0; k < n_texts; k++) {
        size_t len = lens ? lens[k] : strlen(texts[k]);
        total_bytes += len;
        tr_count_text(&T, (const unsigned char *)texts[k], len, specials, nspecial);
    }
    T.sym = xmalloc((T.wdata_n + 1) * sizeof(int));
    T.wlen = xmalloc(((size_t)T.nword + 1) * sizeof(int));
    T.wstamp = xmalloc(((size_t)T.nword + 1) * sizeof(int));
    for (int w = 0; w < T.nword; w++) {
        T.wlen[w] = (int)(T.woff[w + 1] - T.woff[w]);
        T.wstamp[w] = -1;
        for (size_t i = T.woff[w]; i < T.woff[w + 1]; i++) T.sym[i] = byte_gpt2_rank(T.wdata[i]);
        int *s = T.sym + T.woff[w];
        for (int i = 0; i + 1 < T.wlen[w]; i++) {
            int q = tr_pair(&T, s[i], s[i + 1]);
            T.pairs[q].count += T.wcount[w];
            tr_pair_add_occ(&T.pairs[q], w);
        }
    }
    for (int q = 0; q < T.npairs; q++) tr_heap_push(&T, T.pairs[q].count, q);
    if (cfg->verbose)
        fprintf(stderr, "bpe_train: %zu bytes, %d distinct pre-tokens, %d pairs (%.2fs)\n",
                total_bytes, T.nword, T.npairs, time_now() - t0);

    int *touched = NULL, cap_touched = 0, step = 0;
    int target_tokens = cfg->vocab_size - nspecial;
    while (T.ntok < target_tokens && T.nheap > 0) {
        HeapEntry e = tr_heap_pop(&T);
        int64_t cur = T.pairs[e.pair].count;
        if (cur != e.count) { /* stale: re-file under the current count */
            if (cur > 0) tr_heap_push(&T, cur, e.pair);
            continue;
        }
        if (cur < min_freq) break;
        tr_merge(&T, e.pair, step++, &touched, &cap_touched);
        if (cfg->verbose && T.nmerge % 1000 == 0)
            fprintf(stderr, "bpe_train: %d merges, %d tokens, last count %lld (%.2fs)\n", T.nmerge,
                    T.ntok, (long long)cur, time_now() - t0);
    }
    free(touched);

    /* specials must not collide with a learned token's byte-level spelling */
    for (int k = 0; k < nspecial; k++) {
        size_t sl = strlen(specials[k]);
        unsigned char *buf = xmalloc(sl + 1);
        uint32_t bad;
        long l = from_byte_level(specials[k], sl, buf, &bad);
        int clash = l >= 0 ? idmap_find(&T.tmap, T.tdata, T.toff, buf, (size_t)l) : -1;
        free(buf);
        if (clash >= 0) {
            tr_free(&T);
            return errf(err,
                        "bpe_train: the special token \"%s\" is spelled like learned token %d "
                        "in vocab.json; choose another pad token",
                        specials[k], clash);
        }
    }

    /* build the BPE: tokens, specials, merges, pair table */
    BPE t;
    memset(&t, 0, sizeof t);
    t.vocab_size = T.ntok + nspecial;
    t.num_merges = T.nmerge;
    size_t spec_bytes = 0;
    for (int k = 0; k < nspecial; k++) spec_bytes += strlen(specials[k]);
    t.tok_off = xmalloc(((size_t)t.vocab_size + 1) * sizeof(size_t));
    t.tok_data = xmalloc(T.tdata_n + spec_bytes + 1);
    t.tok_special = xcalloc((size_t)t.vocab_size, 1);
    memcpy(t.tok_data, T.tdata, T.tdata_n);
    memcpy(t.tok_off, T.toff, ((size_t)T.ntok + 1) * sizeof(size_t));
    for (int k = 0; k < nspecial; k++) {
        int id = T.ntok + k;
        size_t sl = strlen(specials[k]);
        memcpy(t.tok_data + t.tok_off[id], specials[k], sl);
        t.tok_off[id + 1] = t.tok_off[id] + sl;
        t.tok_special[id] = 1;
    }
    for (int b = 0; b < 256; b++) t.byte_id[b] = byte_gpt2_rank((unsigned char)b);
    size_t nm = (size_t)(T.nmerge ? T.nmerge : 1);
    t.merge_left = xmalloc(nm * sizeof(int));
    t.merge_right = xmalloc(nm * sizeof(int));
    t.merge_result = xmalloc(nm * sizeof(int));
    pair_table_init(&t, nm);
    for (int r = 0; r < T.nmerge; r++) {
        t.merge_left[r] = T.ml[r], t.merge_right[r] = T.mr[r], t.merge_result[r] = T.mres[r];
        ASSERT(pair_table_put(&t, T.ml[r], T.mr[r], r) < 0); /* a merged pair never recurs */
    }
    t.eos_id = T.ntok;
    t.pad_id = cfg->pad_token ? T.ntok + 1 : T.ntok;
    if (cfg->verbose)
        fprintf(stderr, "bpe_train: done: %d merges, vocabulary %d (%.2fs)\n", T.nmerge,
                t.vocab_size, time_now() - t0);
    tr_free(&T);
    *out = t;
    return 0;
}

int bpe_train(BPE *t, const char *const *texts, const size_t *lens, size_t n_texts,
              const BPETrainConfig *cfg, char *err) {
    return train_impl(t, texts, lens, n_texts, cfg, err);
}

int bpe_train_files(BPE *t, const char *const *paths, int n_paths, const BPETrainConfig *cfg,
                    char *err) {
    memset(t, 0, sizeof *t);
    char **texts = xcalloc((size_t)(n_paths > 0 ? n_paths : 1), sizeof(char *));
    size_t *lens = xcalloc((size_t)(n_paths > 0 ? n_paths : 1), sizeof(size_t));
    int rc = 0;
    for (int k = 0; k < n_paths && rc == 0; k++) {
        texts[k] = file_read_all(paths[k], &lens[k], err);
        if (!texts[k]) rc = -1;
    }
    if (rc == 0) rc = train_impl(t, (const char *const *)texts, lens, (size_t)n_paths, cfg, err);
    for (int k = 0; k < n_paths; k++) free(texts[k]);
    free(texts);
    free(lens);
    return rc;
}
