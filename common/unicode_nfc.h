/*
 * common/unicode_nfc.h — Unicode Normalization Form C (UAX #15), for tokenizers whose
 * tokenizer.json asks for the NFC normalizer (Qwen2, Qwen3).
 *
 * NFC = canonical decomposition, canonical ordering of combining marks, canonical
 * composition; the data is unicode_tables.h's (Unicode Character Database, generated).
 * Text is UTF-8; bytes that are not valid UTF-8 pass through unchanged and block
 * composition across them (they are treated as starters that compose with nothing).
 */
#ifndef RLHF_UNICODE_NFC_H
#define RLHF_UNICODE_NFC_H

#include <stddef.h>
#include <stdint.h>

/* NFC of s[0..n). Returns NULL when s is certainly NFC already (the quick check: no code
 * point at or above U+0300, which is where every combining mark and every decomposable
 * character that NFC changes starts); else a malloc'd, NUL-terminated buffer of *out_len
 * bytes (possibly equal to s). Never fails (out of memory is fatal). */
char *unicode_nfc(const char *s, size_t n, size_t *out_len);

/* Canonical combining class of a code point (0 for starters). */
unsigned unicode_ccc(uint32_t cp);

#endif
