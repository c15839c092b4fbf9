/*
 * common/hf_llama.h — the Llama family's Hugging Face config.json (LlamaConfig,
 * Qwen2Config, Qwen3Config) to and from a GPTConfig (gpt.h, family GPT_FAMILY_LLAMA).
 *
 * Which model_type a config is follows from the features rlhf-c computes, so nothing else
 * needs storing: q/k/v biases without q/k norms = qwen2 (Qwen2 always has them); q/k
 * norms without biases = qwen3; neither = llama. (Llama's and Qwen3's attention_bias also
 * puts a bias on o_proj, which rlhf-c's block does not have: attention_bias true is
 * refused.)
 *
 * Read: model_type llama/qwen2/qwen3; architectures[0] (optional) {Llama,Qwen2,Qwen3}
 * ForCausalLM, ...ForSequenceClassification (one label) or ...Model; required
 * vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
 * max_position_embeddings, rms_norm_eps and rope_theta (top level, or inside transformers
 * 5's rope_parameters); optional num_key_value_heads (default: the heads), head_dim
 * (default hidden_size / heads), tie_word_embeddings (default false, as the three classes
 * default), hidden_act (must be silu), mlp_bias / attention_bias (must be false),
 * use_sliding_window (must be false) and layer_types (all "full_attention"). Rope scaling:
 * rope_parameters, else rope_scaling: null, absent, or rope_type (or "type") "default" is
 * none; "llama3" needs factor, low_freq_factor, high_freq_factor and
 * original_max_position_embeddings; any other type is refused naming it. A
 * max_position_embeddings above rlhf-c's 65536 is capped (HfLlamaInfo keeps the original
 * so export can write it back). Errors name the file and the field.
 */
#ifndef RLHF_HF_LLAMA_H
#define RLHF_HF_LLAMA_H

#include <jansson.h>

#include "gpt.h"

typedef enum { HF_LLAMA = 0, HF_QWEN2 = 1, HF_QWEN3 = 2 } HfLlamaType;

typedef enum { HF_ARCH_UNKNOWN = 0, HF_ARCH_LM, HF_ARCH_SCORE } HfArch;

typedef struct {
    HfLlamaType type;
    HfArch arch;  /* from architectures[0]; UNKNOWN when absent or a bare ...Model */
    long max_pos; /* max_position_embeddings as written (may exceed c->max_seq_len) */
} HfLlamaInfo;

/* "llama", "qwen2", "qwen3". */
const char *hf_llama_type_name(HfLlamaType t);
/* 1 if s is one of those names (setting *t), else 0. */
int hf_llama_type_parse(const char *s, HfLlamaType *t);
/* Parse config.json (already loaded; path names it in errors) into c, with head LM or
 * SCORE from the architecture (LM when unknown; the caller may change it) and validated
 * by gpt_config_validate. 0 or -1 with err. */
int hf_llama_config_parse(json_t *cfg, const char *path, GPTConfig *c, HfLlamaInfo *info,
                          char *err);
/* The model_type c can be written as (see the top comment); -1 with err if none. */
int hf_llama_type_of(const GPTConfig *c, HfLlamaType *t, char *err);
/* A config.json object for c (head LM or SCORE) of type t: every field above, written
 * so that hf_llama_config_parse gives c back. max_pos > c->max_seq_len restores a capped
 * max_position_embeddings; torch_dtype is "float32" or "bfloat16". */
json_t *hf_llama_config_build(const GPTConfig *c, HfLlamaType t, long max_pos,
                              const char *torch_dtype);

#endif
