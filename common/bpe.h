/*
 * common/bpe.h — byte-level BPE tokenizer (GPT-2's): train, encode, decode, load, save.
 *
 * Byte-level BPE (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with
 * Subword Units"; byte-level as in Radford et al. 2019, GPT-2): text is UTF-8 bytes; it is
 * split into pre-tokens with GPT-2's pattern
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (implemented by hand, no regex library; \p{L}, \p{N} and \s are the Unicode classes of
 * unicode_tables.h, with \s as JavaScript defines it); each pre-token starts as one token
 * per byte, and merges are applied lowest rank first, all occurrences of the best pair
 * left to right, until no adjacent pair has a rank — exactly GPT-2's encoder.py. So any
 * byte string encodes (bytes that are not valid UTF-8 are "other" characters, one byte
 * each) and decode(encode(s)) == s always.
 *
 * Ids: the 256 one-byte tokens, the merge results, and the special tokens. A tokenizer
 * trained here numbers them like GPT-2: ids 0..255 are the bytes in GPT-2's
 * bytes_to_unicode order (id 0 is "!", id 220 is " "), then one id per merge result in
 * rank order, then the special tokens. Loaded files keep their own ids.
 *
 * Special tokens and padding (the convention every module follows):
 *   - "<|endoftext|>" (BPE_EOS_TOKEN) is always present; eos_id is its id (50256 in GPT-2,
 *     the first id after the merge results in a trained tokenizer).
 *   - Padding uses eos_id unless a separate pad token is configured (BPETrainConfig
 *     pad_token when training; when loading, a vocabulary entry that is neither a byte
 *     nor a merge result nor "<|endoftext|>" is the pad token; at most one may exist). A
 *     pad token gets the id right after eos_id when trained here. pad_id == eos_id means
 *     "no separate pad token".
 *   - Text that contains the string "<|endoftext|>" (or the pad token's string) encodes to
 *     the special id only with BPE_ENCODE_SPECIAL; otherwise it is plain text. Training
 *     always treats special-token strings in the corpus as separators, never as text.
 *
 * Files: GPT-2's encoder.json + vocab.bpe (OpenAI) and Hugging Face vocab.json +
 * merges.txt are the same two formats: a JSON object {token: id} whose keys are token
 * bytes written through bytes_to_unicode (special tokens as themselves), and a text file
 * with an optional first line "#version..." then one merge "left right" per line in
 * rank order. bpe_save_strings writes exactly these, so a checkpoint stores a tokenizer
 * as two strings. Loading validates everything (JSON syntax with line:column, ids dense
 * and unique, every byte present, every merge line has two parts that are bytes or
 * results of earlier merges and whose concatenation is in the vocabulary, no duplicate
 * merge, "<|endoftext|>" present) and reports file:line and what to fix.
 *
 * Ownership and errors: a BPE is a plain struct the caller declares; the load and train
 * functions fill it (after bpe_free of its old contents is the caller's job) and on
 * failure leave it zeroed, return -1 and write the reason into err (ERRBUF_LEN bytes).
 * bpe_free releases it and zeroes it; bpe_free(NULL) is a no-op. Encoding cannot fail;
 * decoding fails only on an out-of-range id. Out of memory is fatal (util.h). A loaded
 * BPE is read-only during encode/decode, so one BPE may be shared by threads.
 *
 * Hugging Face tokenizer.json files (hftok.h) fill the same struct through the builder
 * below and set the fields after pair_cap: another pre-tokenizer (the Llama 3 / Qwen2
 * pattern, bpe_pretoken_end_llama3), NFC normalisation, ignore_merges and any number of
 * added tokens; bpe_encode then cuts the added tokens out of the text first (leftmost,
 * longest; special ones only with BPE_ENCODE_SPECIAL, the others always), normalises each
 * stretch between them, and runs the same pre-token and merge code on it.
 *
 * Not here: WordPiece/Unigram, GPT-4's cl100k pattern, saving a tokenizer.json tokenizer
 * (bpe_save_strings writes only what vocab.json + merges.txt can say).
 */
#ifndef RLHF_BPE_H
#define RLHF_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "unicode_tables.h"

struct json_t; /* jansson's */

#define BPE_EOS_TOKEN "<|endoftext|>"
#define BPE_MAX_VOCAB (1 << 24) /* ids must fit comfortably in int32 message fields */

typedef struct {
    int vocab_size;   /* number of ids: one-byte tokens + merge results + specials */
    int num_merges;   /* ranks 0..num_merges-1 */
    int eos_id;       /* id of "<|endoftext|>" */
    int pad_id;       /* == eos_id unless a separate pad token exists */
    int byte_id[256]; /* byte value -> id of its one-byte token */
    /* token bytes, by id: token id is tok_data[tok_off[id] .. tok_off[id+1]) (raw bytes;
     * for a special token its UTF-8 string) */
    size_t *tok_off;            /* (vocab_size + 1) */
    unsigned char *tok_data;
    unsigned char *tok_special; /* (vocab_size) 1 for special tokens */
    /* merges by rank: merge r joins (merge_left[r], merge_right[r]) into merge_result[r] */
    int *merge_left, *merge_right, *merge_result; /* (num_merges) */
    /* (left,right) -> rank, open addressing; key left<<32|right, empty slot = UINT64_MAX */
    uint64_t *pair_key; /* (pair_cap) */
    int *pair_rank;     /* (pair_cap) */
    size_t pair_cap;    /* power of two */
    /* tokenizer.json extras (hftok.h); all zero for GPT-2 files and trained tokenizers */
    int pretok;           /* BPE_PRETOK_* */
    int nfc;              /* NFC-normalise the text between added tokens */
    int ignore_merges;    /* a pre-token that is a model vocabulary token encodes to it */
    int hf_merge_order;   /* merge one leftmost lowest-rank pair at a time (bpe.c) */
    int n_added;          /* added tokens, cut out of the text before anything else */
    int *added_id;        /* (n_added) their ids, longest content first */
    unsigned char added_first[256]; /* 1 for bytes that start an added token */
    int *vocab_slot;      /* (vocab_cap) token bytes -> model vocabulary id, -1 = empty */
    size_t vocab_cap;
} BPE;

enum {
    BPE_PRETOK_GPT2 = 0,   /* bpe_pretoken_end */
    BPE_PRETOK_LLAMA3 = 1, /* bpe_pretoken_end_llama3, numbers in runs of up to 3 */
    BPE_PRETOK_QWEN2 = 2,  /* bpe_pretoken_end_llama3, one number per pre-token */
    BPE_PRETOK_DIGITS = 3  /* bpe_pretoken_end_digits: each digit alone, GPT-2's between */
};

void bpe_free(BPE *t);

/* ---- loading and saving -------------------------------------------------------------
 * vocab: JSON object text; merges: merges text (see top). The file variants name the
 * files in errors; the string variants call them "vocab" and "merges". */
int bpe_load_strings(BPE *t, const char *vocab_json, const char *merges_txt, char *err);
int bpe_load_files(BPE *t, const char *vocab_path, const char *merges_path, char *err);
/* Both strings are malloc'd, NUL-terminated, owned by the caller. Returns 0. */
int bpe_save_strings(const BPE *t, char **vocab_json, char **merges_txt);
/* Writes both files atomically (util.h file_write_atomic). 0 or -1 with err. */
int bpe_save_files(const BPE *t, const char *vocab_path, const char *merges_path, char *err);

/* ---- training ------------------------------------------------------------------------
 * Counts the corpus's pre-tokens, then repeatedly merges the most frequent adjacent pair
 * (pair counts kept incrementally: only the words that contain the merged pair are
 * touched). Ties are broken deterministically: among pairs with the highest count, the
 * one whose (left token bytes, right token bytes) is smallest, comparing bytes as
 * unsigned with a prefix before its extensions. The result depends only on the multiset
 * of pre-tokens, not on the order of texts. A merge whose result string is already a
 * token reuses that id (so merges can outnumber new ids). Stops when the vocabulary has
 * vocab_size ids (specials included), when no pair occurs min_frequency times, or when
 * no pair is left; the last two may end below vocab_size (check t->vocab_size). */
typedef struct {
    int vocab_size;        /* target number of ids, specials included: >= 257 (258 with pad) */
    int min_frequency;     /* stop when the best pair occurs fewer times; values < 1 mean 1 */
    const char *pad_token; /* NULL: pad with EOS; else a separate pad token (non-empty) */
    int verbose;           /* progress lines on stderr */
} BPETrainConfig;

/* texts[i] has lens[i] bytes (lens NULL: NUL-terminated). */
int bpe_train(BPE *t, const char *const *texts, const size_t *lens, size_t n_texts,
              const BPETrainConfig *cfg, char *err);
/* Each file's whole content is one text. Unreadable file -> -1 with err. */
int bpe_train_files(BPE *t, const char *const *paths, int n_paths, const BPETrainConfig *cfg,
                    char *err);

/* ---- encode / decode ----------------------------------------------------------------- */
#define BPE_ENCODE_SPECIAL 1u        /* special-token strings in text become their ids */
#define BPE_DECODE_SKIP_SPECIAL 1u   /* special ids produce no text */
#define BPE_DECODE_REPLACE_INVALID 2u /* invalid UTF-8 in the output becomes U+FFFD, one per
                                       * maximal invalid subpart (the WHATWG / JavaScript
                                       * TextDecoder rule), so the text is valid UTF-8 */

/* Encode len bytes of text. Ids go to (*ids)[0..n), the buffer grown with realloc as
 * needed (*ids may be NULL with *cap 0; the caller frees it); returns n. Never fails. */
size_t bpe_encode(const BPE *t, const char *text, size_t len, unsigned flags, int **ids,
                  size_t *cap);

/* Decode n ids to a malloc'd NUL-terminated string (*out; *out_len bytes, NUL not
 * counted). An id outside [0, vocab_size) -> -1, err names its position, *out NULL. */
int bpe_decode(const BPE *t, const int *ids, size_t n, unsigned flags, char **out,
               size_t *out_len, char *err);

/* The bytes of one token (len in *len), or NULL for an out-of-range id. */
const unsigned char *bpe_token_bytes(const BPE *t, int id, size_t *len);
int bpe_is_special(const BPE *t, int id);

/* ---- the pieces, public for tests and tools ------------------------------------------ */
/* GPT-2's bytes_to_unicode: the code point byte b is written as in vocab/merges files. */
uint32_t bpe_byte_to_unicode(unsigned char b);
/* Inverse: the byte for a code point, or -1 if cp is not one of the 256. */
int bpe_unicode_to_byte(uint32_t cp);
/* Class of a code point (unicode_tables.h). */
UnicodeClass bpe_char_class(uint32_t cp);
/* GPT-2 pre-tokenization: the end of the pre-token that starts at byte i of s[0..n),
 * i < n. Iterating i = end covers s exactly. */
size_t bpe_pretoken_end(const char *s, size_t n, size_t i);
/* The Llama 3 / Qwen2 tokenizer.json pattern (max_digits 3 / 1):
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
 *    ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * with the same classes as bpe_pretoken_end (case-insensitive means ASCII letters). */
size_t bpe_pretoken_end_llama3(const char *s, size_t n, size_t i, int max_digits);
/* tokenizer.json's Sequence [Digits (individual_digits true), ByteLevel (use_regex true)]
 * (SmolLM2): every \p{N} character is a pre-token of its own, and each run between them
 * goes through GPT-2's pattern as a text of its own (the run's end is an end of text to
 * \s+(?!\S)). *run_end caches the end of the digit-free run at i: set it to 0 before the
 * first call on a text and keep it between calls that iterate i = end. */
size_t bpe_pretoken_end_digits(const char *s, size_t n, size_t i, size_t *run_end);
/* Apply the merges to one pre-token's symbols ids[0..n) in place; returns the new count.
 * naive = 1 runs the direct GPT-2 loop (O(n^2), the reference), 0 the heap version that
 * bpe_encode uses for long pre-tokens; both give the same result. */
int bpe_merge_ids(const BPE *t, int *ids, int n, int naive);

/* ---- building a BPE from parts (the file loaders: bpe.c's and hftok.c's) --------------
 * new: keys[id] is the byte-level string of model vocabulary id (ids 0..n-1), borrowed
 * until finish; every byte must have a token. reserve_merges once with an upper bound,
 * then merge in rank order: `where` prefixes errors ("merges.txt:12"), num_label and num
 * name the merge for a later duplicate ("line" 12). finish: GPT-2 rules (tokens that are
 * neither bytes nor merge results are special, EOS required, at most one pad).
 * finish_hf: the added tokens (ids >= n, or < n with the same string) complete the ids
 * without gaps, special ones are tok_special, eos_id = pad_id = the special token named
 * "<|endoftext|>", "<|end_of_text|>", "</s>" or "<|im_end|>" (the first of these found),
 * else the first special one; aname names the added tokens' field in errors. Both move the
 * result to *out (0) or leave it zeroed (-1 with err); free the builder either way. */
typedef struct BPEBuilder BPEBuilder;
typedef struct {
    int id;
    const char *content; /* UTF-8, non-empty */
    int special;
} BPEAddedToken;
BPEBuilder *bpe_builder_new(const char *const *keys, size_t n, const char *vname, char *err);
void bpe_builder_reserve_merges(BPEBuilder *b, size_t max_merges);
/* Accept merges whose parts are any vocabulary tokens, not only bytes and earlier results
 * (tokenizer.json files such as Llama 3's list merges out of that order). */
void bpe_builder_any_order(BPEBuilder *b);
int bpe_builder_merge(BPEBuilder *b, const char *left, size_t ll, const char *right, size_t rl,
                      const char *where, const char *num_label, int num, char *err);
int bpe_builder_finish(BPEBuilder *b, BPE *out, char *err);
int bpe_builder_finish_hf(BPEBuilder *b, const BPEAddedToken *added, int n_added,
                          const char *aname, BPE *out, char *err);
void bpe_builder_free(BPEBuilder *b);
/* The keys of a JSON object {token: id} by id (ids dense 0..N-1, unique), borrowed from
 * obj; NULL with err (vname names the object) otherwise or under min_entries. */
const char **bpe_vocab_keys(struct json_t *obj, const char *vname, size_t min_entries, char *err);

#endif
