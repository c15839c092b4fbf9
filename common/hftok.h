/*
 * common/hftok.h — Hugging Face tokenizer.json (byte-level BPE) into a BPE (bpe.h).
 *
 * Reads the tokenizers library's single-file format as the Llama 3, Qwen2/2.5 and Qwen3
 * models ship it, and fills the same BPE that GPT-2's files give, so bpe_encode and
 * bpe_decode are the one encoder for both. What is read:
 *   - model: type "BPE"; vocab {token: id} in byte-level form; merges in rank order, each
 *     "left right" or ["left", "right"]; ignore_merges (a pre-token that is itself a
 *     token is not merged); dropout, continuing_subword_prefix, end_of_word_suffix and
 *     byte_fallback must be off (null, "" or false);
 *   - added_tokens: [{id, content, special, lstrip, rstrip, single_word, normalized}];
 *     they are cut out of the raw text before normalising (leftmost, longest match);
 *     special ones only when encoding with BPE_ENCODE_SPECIAL, the others always;
 *     lstrip/rstrip/single_word must be false; "normalized" is not looked at (the match is
 *     on the raw text);
 *   - normalizer: null, {"type": "NFC"} or a Sequence of NFC (unicode_nfc.h);
 *   - pre_tokenizer: a Sequence of Split (one of the known patterns below, behavior
 *     "Isolated", invert false) then ByteLevel (add_prefix_space false, use_regex false);
 *     or ByteLevel alone with use_regex true (GPT-2's pattern, bpe_pretoken_end); or a
 *     Sequence of Digits (individual_digits true) then ByteLevel (add_prefix_space false,
 *     use_regex true), SmolLM2's: each \p{N} character alone, GPT-2's pattern between
 *     (bpe_pretoken_end_digits). Known
 *     Split patterns, matched by hand (bpe_pretoken_end_llama3), never by a regex engine:
 *       Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *                 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *       Qwen2/Qwen3: the same with \p{N} instead of \p{N}{1,3};
 *     any other pattern is refused, naming the file and the pattern;
 *   - decoder: null or ByteLevel (bytes back to text; added tokens decode to their
 *     content);
 *   - post_processor, truncation, padding: ignored (encoding gives the text's own ids;
 *     a BOS the chat template wants is the caller's to add).
 * The EOS of the BPE is the rule of bpe_builder_finish_hf (bpe.h). Errors name the file
 * and the field ("tokenizer.json: pre_tokenizer.pretokenizers[0].pattern.Regex: ...").
 */
#ifndef RLHF_HFTOK_H
#define RLHF_HFTOK_H

#include <stddef.h>

#include "bpe.h"

/* Fill t from the tokenizer.json file at path (0), or leave it zeroed (-1 with err). */
int hftok_load_file(BPE *t, const char *path, char *err);
/* The same from JSON text json[0..len); name stands for the file in errors. */
int hftok_load_string(BPE *t, const char *json, size_t len, const char *name, char *err);

#endif
