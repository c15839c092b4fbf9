/*
 * common/toksrc.h — where a program's tokenizer comes from, and the text it keeps to
 * write back: the one loader every program uses for `tokenizer.path` and for the
 * tokenizer a checkpoint holds.
 *
 * A tokenizer arrives in one of two forms, and both fill the same BPE (bpe.h):
 *   - vocab + merges: GPT-2's / Hugging Face's vocab.json + merges.txt (a tokenizer
 *     trained by rlhf-tokenize, GPT-2's own files), bpe_load_strings;
 *   - tokenizer.json: a Hugging Face tokenizer.json (Llama 3, Qwen2/3, SmolLM2 ...),
 *     hftok_load_string; a checkpoint of an imported model holds this one.
 * A folder (tokenizer.path) holds vocab.json + merges.txt, or else tokenizer.json, and
 * optionally tokenizer_config.json, whose "chat_template" (a string, or the one named
 * "default" of a list) is kept as the chat template (chat.template = auto reads it). A
 * checkpoint (CkptMeta) holds vocab + merges, or tok_json, or neither (an error here,
 * naming the file and the way out). The texts are kept in TokSrc so that every checkpoint
 * a run writes carries the tokenizer (and the chat template) it read, in the form it had.
 * The EOS of either form is bpe.h's rule (bpe_builder_finish / bpe_builder_finish_hf).
 */
#ifndef RLHF_TOKSRC_H
#define RLHF_TOKSRC_H

#include "bpe.h"
#include "ckpt.h"

/* The tokenizer's source text (each malloc'd, or NULL): vocab + merges, or json. */
typedef struct {
    char *vocab, *merges;
    char *json;
    char *chat_template; /* the model's chat template, carried along (NULL: none) */
} TokSrc;

/* Load from folder dir: vocab.json + merges.txt if vocab.json exists, else tokenizer.json.
 * keep (may be NULL) receives the texts. 0, or -1 with err naming the file. */
int toksrc_load_dir(BPE *t, TokSrc *keep, const char *dir, char *err);
/* DIR/tokenizer_config.json's "chat_template" (a string, or of a list of named ones the
 * "default") into *out, malloc'd (NULL when the file or the field is absent). 0, or -1
 * with err naming the file for one that is not JSON or another chat_template value. */
int toksrc_dir_chat_template(const char *dir, char **out, char *err);
/* Load from a checkpoint's metadata; path names the checkpoint in errors. */
int toksrc_load_meta(BPE *t, TokSrc *keep, const CkptMeta *meta, const char *path, char *err);
/* Open the checkpoint at path and load its tokenizer. */
int toksrc_load_ckpt(BPE *t, TokSrc *keep, const char *path, char *err);
/* tokenizer.path if set (dir non-empty), else the checkpoint at ckpt. */
int toksrc_load(BPE *t, TokSrc *keep, const char *dir, const char *ckpt, char *err);
/* 1 if the metadata holds a tokenizer in either form. */
int toksrc_meta_has(const CkptMeta *meta);
/* "vocab+merges", "tokenizer.json" or "none": the form a checkpoint holds. */
const char *toksrc_meta_form(const CkptMeta *meta);
/* Point meta's tokenizer fields at s's texts (borrowed: s must outlive the write). */
void toksrc_to_meta(const TokSrc *s, CkptMeta *meta);
/* A copy of src's texts into dst. */
void toksrc_copy(TokSrc *dst, const TokSrc *src);
void toksrc_free(TokSrc *s);

#endif
