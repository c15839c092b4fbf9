/*
 * common/unicode_nfc.c — NFC normalisation (see unicode_nfc.h).
 *
 * Decoded code points go to one buffer: each is replaced by its full canonical
 * decomposition (a table look-up; Hangul syllables by arithmetic), runs of non-starters
 * are put in canonical order (stable insertion sort by combining class: runs are short),
 * then the buffer is composed in place with UAX #15's rule: a character composes with the
 * last starter unless a character between them has class 0 or a class >= its own.
 * Invalid UTF-8 bytes are carried as 0x80000000|byte and written back as the byte.
 */
#include "unicode_nfc.h"

#include <stdlib.h>
#include <string.h>

#include "unicode_tables.h"
#include "util.h"

#define RAW_BYTE 0x80000000u

/* Hangul (Unicode ch. 3.12): syllable = SBASE + (l * VCOUNT + v) * TCOUNT + t */
#define SBASE 0xAC00u
#define LBASE 0x1100u
#define VBASE 0x1161u
#define TBASE 0x11A7u
#define LCOUNT 19u
#define VCOUNT 21u
#define TCOUNT 28u
#define SCOUNT (LCOUNT * VCOUNT * TCOUNT)

unsigned unicode_ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    int lo = 0, hi = unicode_num_ccc_ranges - 1;
    while (lo <= hi) {
        int mid = (lo + hi) >> 1;
        if (cp < unicode_ccc_ranges[mid].lo)
            hi = mid - 1;
        else if (cp > unicode_ccc_ranges[mid].hi)
            lo = mid + 1;
        else
            return unicode_ccc_ranges[mid].ccc;
    }
    return 0;
}

static const UnicodeDecomp *find_decomp(uint32_t cp) {
    int lo = 0, hi = unicode_num_decomps - 1;
    while (lo <= hi) {
        int mid = (lo + hi) >> 1;
        if (cp < unicode_decomps[mid].cp)
            hi = mid - 1;
        else if (cp > unicode_decomps[mid].cp)
            lo = mid + 1;
        else
            return &unicode_decomps[mid];
    }
    return NULL;
}

/* The primary composite of (a, b), or 0. */
static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE &&
        b < TBASE + TCOUNT)
        return a + (b - TBASE);
    int lo = 0, hi = unicode_num_composites - 1;
    while (lo <= hi) {
        int mid = (lo + hi) >> 1;
        const UnicodeComposite *c = &unicode_composites[mid];
        if (a < c->first || (a == c->first && b < c->second))
            hi = mid - 1;
        else if (a > c->first || b > c->second)
            lo = mid + 1;
        else
            return c->composite;
    }
    return 0;
}

/* One UTF-8 character at s[i] (i < n): its code point, or RAW_BYTE|byte for an invalid
 * or truncated sequence (one byte). *len gets the bytes consumed. */
static uint32_t next_cp(const unsigned char *s, size_t n, size_t i, size_t *len) {
    unsigned c = s[i];
    *len = 1;
    if (c < 0x80) return c;
    size_t l;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF)
        l = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        l = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        l = 4, v = c & 0x07, min = 0x10000;
    else
        return RAW_BYTE | c;
    if (n - i < l) return RAW_BYTE | c;
    for (size_t k = 1; k < l; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return RAW_BYTE | c;
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return RAW_BYTE | c;
    *len = l;
    return v;
}

static size_t put_cp(unsigned char *o, uint32_t cp) {
    if (cp & RAW_BYTE) {
        o[0] = (unsigned char)(cp & 0xFF);
        return 1;
    }
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static unsigned ccc_of(uint32_t cp) {
    return (cp & RAW_BYTE) ? 0 : unicode_ccc(cp);
}

/* Decompose s into buf (room for 4n code points: no decomposition is longer than 4 per
 * input byte); returns the count. */
static size_t decompose(const unsigned char *s, size_t n, uint32_t *buf) {
    size_t m = 0;
    for (size_t i = 0, len; i < n; i += len) {
        uint32_t cp = next_cp(s, n, i, &len);
        if (cp >= SBASE && cp < SBASE + SCOUNT) {
            uint32_t k = cp - SBASE;
            buf[m++] = LBASE + k / (VCOUNT * TCOUNT);
            buf[m++] = VBASE + (k % (VCOUNT * TCOUNT)) / TCOUNT;
            if (k % TCOUNT) buf[m++] = TBASE + k % TCOUNT;
            continue;
        }
        const UnicodeDecomp *d = cp >= 0xC0 && !(cp & RAW_BYTE) ? find_decomp(cp) : NULL;
        if (!d) {
            buf[m++] = cp;
            continue;
        }
        memcpy(buf + m, unicode_decomp_data + d->off, d->len * sizeof(uint32_t));
        m += d->len;
    }
    return m;
}

/* Canonical ordering: stable sort of each run of non-starters by combining class. */
static void reorder(uint32_t *buf, size_t m) {
    for (size_t i = 1; i < m; i++) {
        unsigned c = ccc_of(buf[i]);
        if (c == 0) continue;
        uint32_t x = buf[i];
        size_t j = i;
        while (j > 0 && ccc_of(buf[j - 1]) > c) {
            buf[j] = buf[j - 1];
            j--;
        }
        buf[j] = x;
    }
}

/* Canonical composition in place; returns the new count. */
static size_t compose(uint32_t *buf, size_t m) {
    size_t out = 0, starter = 0;
    int have_starter = 0;
    unsigned last_ccc = 0;
    for (size_t i = 0; i < m; i++) {
        uint32_t c = buf[i];
        unsigned cc = ccc_of(c);
        if (have_starter && !(c & RAW_BYTE)) {
            int adjacent = out == starter + 1;
            int blocked = !adjacent && (last_ccc == 0 || last_ccc >= cc);
            uint32_t p = blocked || (buf[starter] & RAW_BYTE) ? 0 : compose_pair(buf[starter], c);
            if (p) {
                buf[starter] = p;
                continue;
            }
        }
        if (cc == 0) {
            starter = out;
            have_starter = 1;
        }
        last_ccc = cc;
        buf[out++] = c;
    }
    return out;
}

char *unicode_nfc(const char *text, size_t n, size_t *out_len) {
    const unsigned char *s = (const unsigned char *)text;
    size_t k = 0;
    while (k < n && s[k] < 0xCC) k++; /* lead bytes >= 0xCC start code points >= U+0300 */
    if (k == n) return NULL;
    uint32_t *buf = xmalloc((4 * n + 1) * sizeof(uint32_t));
    size_t m = decompose(s, n, buf);
    reorder(buf, m);
    m = compose(buf, m);
    unsigned char *out = xmalloc(4 * m + 1);
    size_t o = 0;
    for (size_t i = 0; i < m; i++) o += put_cp(out + o, buf[i]);
    out[o] = 0;
    free(buf);
    *out_len = o;
    return (char *)out;
}
