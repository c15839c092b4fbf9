#!/usr/bin/env bash
# tests/t_hf_llama.sh — Hugging Face interop of the Llama family end to end:
# build/rlhf-hf and build/rlhf-logprobs against the fixtures of tests/ref/hf_llama (made at
# dev time by its make_fixture.py: LlamaForCausalLM untied with llama3 rope scaling and GQA
# and a tokenizer; Qwen2ForCausalLM F16 with q/k/v biases, tied, shipping lm_head.weight;
# Qwen3ForCausalLM with q/k norms and head_dim != hidden/heads; a BF16 Llama in two shards
# with unprefixed keys and transformers 5 rope_parameters; a one-label
# LlamaForSequenceClassification; and the outputs of an independent float64 PyTorch
# forward).
#   - import is bit-exact (`rlhf-hf info` of the HF folder == of the checkpoint);
#   - log-probs and scores match the PyTorch reference within 1e-4;
#   - import -> export -> import is bit-exact (f32 and bf16 exports; bf16 -> f32 -> bf16),
#     export is deterministic, config.json and the tokenizer files are what HF reads;
#   - bad folders (config fields, shards, shapes, dtypes, tokenizer) fail naming the file
#     and the field or tensor.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
HF=$BUILD/rlhf-hf
LP=$BUILD/rlhf-logprobs
REF=tests/ref/hf_llama
MODELS="llama qwen2 qwen3 llama_sharded score"
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_hf_llama.XXXXXX")
trap 'rm -rf "$T"' EXIT
. tests/hf_common.sh
for b in "$HF" "$LP"; do
  [ -x "$b" ] || { echo "t_hf_llama: $b is not built (make $b)"; exit 1; }
done


# ---- import: bit-exact, and parity with the PyTorch reference ----
for m in $MODELS; do
  if ! "$HF" import $REF/$m "$T/$m.h5" >"$T/log" 2>&1; then bad "import $m: $(cat "$T/log")"; continue; fi
  "$HF" info $REF/$m >"$T/info_hf_$m" 2>&1
  "$HF" info "$T/$m.h5" >"$T/info_ck_$m" 2>&1
  if [ -s "$T/info_hf_$m" ] && cmp -s "$T/info_hf_$m" "$T/info_ck_$m"; then
    ok "import $m is bit-exact ($(grep -c '^tensor' "$T/info_ck_$m") tensors; $(grep -o 'class=[A-Za-z0-9]*' "$T/info_ck_$m"))"
  else
    bad "import $m differs: $(diff "$T/info_hf_$m" "$T/info_ck_$m" | head -5)"
  fi
  "$LP" "$T/$m.h5" <$REF/tokens.jsonl >"$T/lp_$m" 2>"$T/err"
  if compare "$T/lp_$m" $REF/${m}_ref.txt 1e-4; then ok "$m: output matches PyTorch float64 (1e-4)"
  else bad "$m: output differs from PyTorch: $(head -3 "$T/err")"; fi
done
grep -q "head=score" "$T/info_ck_score" && ok "score: into /reward with the score head" || bad "score: head"
grep -q "tokenizer json" "$T/info_ck_llama" && grep -q "chat_template crc32" "$T/info_ck_llama" \
  && ok "llama: tokenizer.json and chat template imported" || bad "llama: tokenizer missing"
grep -q "lm_head.weight" "$T/info_ck_llama" && ! grep -q "lm_head.weight" "$T/info_ck_qwen2" \
  && ok "untied llama has lm_head.weight; tied qwen2 (lm_head shipped, equal) has none" || bad "lm_head rows"

# ---- export -> import -> export ----
for m in $MODELS; do
  dt=f32; [ $m = llama_sharded ] && dt=bf16
  if "$HF" export "$T/$m.h5" "$T/exp_$m" --dtype $dt >"$T/log" 2>&1 &&
     "$HF" import "$T/exp_$m" "$T/${m}2.h5" >>"$T/log" 2>&1 &&
     "$HF" export "$T/${m}2.h5" "$T/exp2_$m" --dtype $dt >>"$T/log" 2>&1; then
    ok "$m: export ($dt), import, export"
  else
    bad "$m: export/import chain: $(cat "$T/log")"
    continue
  fi
  "$HF" info "$T/${m}2.h5" >"$T/info2_$m" 2>&1
  "$HF" info "$T/exp_$m" >"$T/info3_$m" 2>&1
  cmp -s "$T/info_ck_$m" "$T/info2_$m" && cmp -s "$T/info_ck_$m" "$T/info3_$m" \
    && ok "$m: import -> export -> import is bit-exact" \
    || bad "$m: round trip differs: $(diff "$T/info_ck_$m" "$T/info2_$m" | head -5)"
  cmp -s "$T/exp_$m/model.safetensors" "$T/exp2_$m/model.safetensors" &&
    cmp -s "$T/exp_$m/config.json" "$T/exp2_$m/config.json" && ok "$m: export is deterministic" \
    || bad "$m: two exports differ"
done
# bf16 -> f32 -> bf16: the f32 export of the BF16 model, imported, is the same model
"$HF" export "$T/llama_sharded.h5" "$T/exp_f32" >/dev/null 2>&1 && "$HF" info "$T/exp_f32" >"$T/info_f32" 2>&1
cmp -s "$T/info_ck_llama_sharded" "$T/info_f32" && ok "bf16 -> f32 export -> bf16 export is exact" \
  || bad "bf16 -> f32 differs: $(head -3 "$T/info_f32")"
head -c 600 "$T/exp_llama_sharded/model.safetensors" | grep -q '"dtype":"BF16"' &&
  grep -q '"torch_dtype": "bfloat16"' "$T/exp_llama_sharded/config.json" \
  && ok "--dtype bf16: BF16 tensors, torch_dtype bfloat16" || bad "--dtype bf16 output"
cj() { grep -q -- "$2" "$T/exp_$1/config.json"; }
cj llama '"LlamaForCausalLM"' && cj llama '"rope_type": "llama3"' && cj llama '"tie_word_embeddings": false' &&
  cj llama '"num_key_value_heads": 2' && cj llama '"bos_token_id": 258' \
  && ok "llama config.json: class, llama3 scaling, untied, GQA, token ids" || bad "llama config.json: $(cat "$T/exp_llama/config.json")"
cj qwen2 '"model_type": "qwen2"' && cj qwen2 '"use_sliding_window": false' && ! grep -q lm_head "$T/exp_qwen2/model.safetensors" \
  && ok "qwen2 config.json and weights: model_type qwen2, no lm_head (tied)" || bad "qwen2 export"
cj qwen3 '"Qwen3ForCausalLM"' && cj qwen3 '"head_dim": 6' && grep -q 'q_norm' "$T/exp_qwen3/model.safetensors" \
  && ok "qwen3 config.json: class, head_dim 6, q/k norms" || bad "qwen3 export"
cj score '"LlamaForSequenceClassification"' && cj score '"LABEL_0"' && grep -q '"score.weight"' "$T/exp_score/model.safetensors" \
  && ok "score config.json: one label, score.weight" || bad "score export"
cmp -s $REF/llama/tokenizer.json "$T/exp_llama/tokenizer.json" && ok "tokenizer.json survives byte for byte" || bad "tokenizer.json differs"
grep -q '"chat_template": "{{ bos_token }}' "$T/exp_llama/tokenizer_config.json" &&
  grep -q '"eos_token": "<|eot_id|>"' "$T/exp_llama/tokenizer_config.json" \
  && ok "tokenizer_config.json: chat template, eos token" || bad "tokenizer_config.json: $(cat "$T/exp_llama/tokenizer_config.json")"
[ ! -e "$T/exp_qwen2/tokenizer.json" ] && ok "no tokenizer, no tokenizer files" || bad "qwen2 export invented a tokenizer"
"$LP" "$T/llama2.h5" <$REF/tokens.jsonl >"$T/lp_llama2" 2>&1
cmp -s "$T/lp_llama" "$T/lp_llama2" && ok "re-imported model gives identical log-probs" || bad "re-imported log-probs differ"

# ---- bad HF folders ----
mkhf() { rm -rf "$T/bad"; cp -r $REF/$1 "$T/bad"; }
imp() { "$HF" import "$T/bad" "$T/x.h5" "$@"; }
cfg() { sed -i "$1" "$T/bad/config.json"; }
mkhf qwen3; cfg '/"hidden_size"/d'
expect_fail "config: hidden_size missing" 'config.json: "hidden_size" is missing' imp
mkhf qwen3; cfg 's/"rope_theta": 1000000.0/"rope_thetx": 1/'
expect_fail "config: rope_theta missing" '"rope_theta" is missing' imp
mkhf llama; cfg 's/"llama3"/"yarn"/'
expect_fail "config: rope type yarn" 'rope_scaling.rope_type" yarn is not supported' imp
mkhf llama_sharded; cfg 's/"llama3"/"dynamic"/'
expect_fail "config: rope_parameters type dynamic" 'rope_parameters.rope_type" dynamic' imp
mkhf qwen2; cfg 's/"use_sliding_window": false/"use_sliding_window": true/'
expect_fail "config: sliding window on" '"use_sliding_window" is true' imp
mkhf llama; cfg 's/"silu"/"gelu"/'
expect_fail "config: hidden_act gelu" '"hidden_act" gelu' imp
mkhf llama; cfg 's/"attention_bias": false/"attention_bias": true/'
expect_fail "config: llama attention_bias" '"attention_bias" is true' imp
mkhf llama; cfg 's/"LlamaForCausalLM"/"MistralForCausalLM"/'
expect_fail "config: unknown architecture" 'architectures[0] "MistralForCausalLM"' imp
mkhf llama; cfg 's/"model_type": "llama"/"model_type": "gemma"/'
expect_fail "config: model_type gemma" 'model_type gemma is not supported' imp
mkhf llama; cfg 's/"tie_word_embeddings": false/"tie_word_embeddings": true/'
expect_fail "tied, but lm_head.weight differs" 'lm_head.weight differs from model.embed_tokens.weight' imp
mkhf score; cfg 's/"0": "LABEL_0"/"0": "LABEL_0", "1": "LABEL_1"/'
expect_fail "score: two labels" "2 labels" imp
mkhf qwen3; cfg 's/"num_hidden_layers": 2/"num_hidden_layers": 3/'
expect_fail "missing tensor" 'missing tensor "model.layers.2.input_layernorm.weight"' imp
mkhf qwen3; cfg 's/"intermediate_size": 24/"intermediate_size": 25/'
expect_fail "wrong shape" 'has shape (24,16), expected (25,16)' imp
mkhf qwen3
sed -i 's/"model.norm.weight":{"dtype":"F32","shape":\[16\]/"model.norm.weight":{"dtype":"I64","shape":[ 8]/' "$T/bad/model.safetensors"
expect_fail "dtype I64" 'tensor "model.norm.weight" is I64; F32, F16 or BF16 expected' imp
mkhf llama_sharded; head -c 3000 $REF/llama_sharded/model-00002-of-00002.safetensors >"$T/bad/model-00002-of-00002.safetensors"
expect_fail "truncated shard" "model-00002-of-00002.safetensors" imp
grep -q "beyond" "$T/err" && ok "truncated shard: the data end is named" || bad "truncated shard: $(cat "$T/err")"
mkhf llama_sharded; sed -i '0,/model-00002-of-00002/s//model-00003-of-00002/' "$T/bad/model.safetensors.index.json"
expect_fail "index names a missing shard" 'model-00003-of-00002.safetensors, which is missing' imp
mkhf llama_sharded; sed -i '/"embed_tokens.weight"/d' "$T/bad/model.safetensors.index.json"
expect_fail "tensor not in the index" 'tensor "embed_tokens.weight" is not in' imp
mkhf llama_sharded; rm "$T/bad/model.safetensors.index.json"
expect_fail "shards without an index" 'model.safetensors: missing (and no model.safetensors.index.json)' imp
mkhf llama; sed -i 's/"type": "BPE"/"type": "WordPiece"/' "$T/bad/tokenizer.json"
expect_fail "tokenizer rlhf-c cannot run: refused" 'tokenizer.json: model.type is "WordPiece"' imp
if imp --no-tokenizer >"$T/log" 2>&1 && "$HF" info "$T/x.h5" >"$T/info_nt" 2>&1 &&
   ! grep -q '^tokenizer\|^chat_template' "$T/info_nt" &&
   [ "$(grep '^tensor' "$T/info_nt")" = "$(grep '^tensor' "$T/info_ck_llama")" ]; then
  ok "--no-tokenizer imports the same weights without the tokenizer"
else
  bad "--no-tokenizer: $(cat "$T/log")"
fi
rm -f "$T/x.h5"
expect_fail "export: --dtype f16" "--dtype f16" "$HF" export "$T/llama.h5" "$T/e" --dtype f16
expect_fail "import: --dtype" "does not apply" "$HF" import $REF/llama "$T/x.h5" --dtype bf16
[ ! -e "$T/x.h5" ] && ok "failed imports leave no output" || bad "a failed import left $T/x.h5"

echo "t_hf_llama: $checks checks, $failed failed"
[ "$failed" -eq 0 ]
