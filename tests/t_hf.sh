#!/usr/bin/env bash
# tests/t_hf.sh — Hugging Face interop end to end: build/rlhf-hf and build/rlhf-logprobs
# against the fixtures of tests/ref/hf (made at dev time by make_fixture.py: a tiny GPT-2
# LM in F32 without key prefixes, a one-label reward model in F16 with them, and the
# outputs of an independent float64 PyTorch GPT-2).
#   - import is bit-exact (`rlhf-hf info` of the HF folder == of the checkpoint);
#   - log-probs and scores match the PyTorch reference within 1e-4;
#   - import -> export -> import is bit-exact, export is deterministic, tokenizer files
#     survive byte for byte;
#   - bad configs, bad weights, bad checkpoints and bad input lines fail with a message.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
HF=$BUILD/rlhf-hf
LP=$BUILD/rlhf-logprobs
REF=tests/ref/hf
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_hf.XXXXXX")
trap 'rm -rf "$T"' EXIT
. tests/hf_common.sh
for b in "$HF" "$LP"; do
  [ -x "$b" ] || { echo "t_hf: $b is not built (make $b)"; exit 1; }
done


# ---- import: bit-exact, and parity with the PyTorch reference ----
if "$HF" import $REF/lm "$T/lm.h5" >"$T/log" 2>&1; then ok "import lm"; else bad "import lm: $(cat "$T/log")"; fi
if "$HF" import $REF/score "$T/score.h5" >"$T/log" 2>&1; then ok "import score"; else bad "import score: $(cat "$T/log")"; fi
for m in lm score; do
  "$HF" info $REF/$m >"$T/info_hf_$m" 2>&1
  "$HF" info "$T/$m.h5" >"$T/info_ck_$m" 2>&1
  if [ -s "$T/info_hf_$m" ] && cmp -s "$T/info_hf_$m" "$T/info_ck_$m"; then
    ok "import $m is bit-exact ($(grep -c '^tensor' "$T/info_ck_$m") tensors)"
  else
    bad "import $m differs: $(diff "$T/info_hf_$m" "$T/info_ck_$m" | head -5)"
  fi
done
grep -q "head=lm" "$T/info_ck_lm" && grep -q "tokenizer vocab" "$T/info_ck_lm" && ok "lm: head and tokenizer" || bad "lm: head/tokenizer"
grep -q "head=score" "$T/info_ck_score" && ok "score: head" || bad "score: head"

"$LP" "$T/lm.h5" <$REF/tokens.jsonl >"$T/lp_lm" 2>"$T/err"
if compare "$T/lp_lm" $REF/lm_ref.txt 1e-4; then ok "log-probs match PyTorch (1e-4)"; else bad "log-probs differ from PyTorch"; fi
"$LP" "$T/score.h5" <$REF/tokens.jsonl >"$T/lp_score" 2>"$T/err"
if compare "$T/lp_score" $REF/score_ref.txt 1e-4; then ok "scores match PyTorch (1e-4)"; else bad "scores differ from PyTorch"; fi

# ---- export -> import -> export ----
for m in lm score; do
  if "$HF" export "$T/$m.h5" "$T/exp_$m" >"$T/log" 2>&1 &&
     "$HF" import "$T/exp_$m" "$T/${m}2.h5" >>"$T/log" 2>&1 &&
     "$HF" export "$T/${m}2.h5" "$T/exp2_$m" >>"$T/log" 2>&1; then
    ok "$m: export, import, export"
  else
    bad "$m: export/import chain: $(cat "$T/log")"
    continue
  fi
  "$HF" info "$T/${m}2.h5" >"$T/info2_$m" 2>&1
  cmp -s "$T/info_ck_$m" "$T/info2_$m" && ok "$m: import -> export -> import is bit-exact" \
    || bad "$m: round trip differs: $(diff "$T/info_ck_$m" "$T/info2_$m" | head -5)"
  cmp -s "$T/exp_$m/model.safetensors" "$T/exp2_$m/model.safetensors" &&
    cmp -s "$T/exp_$m/config.json" "$T/exp2_$m/config.json" && ok "$m: export is deterministic" \
    || bad "$m: two exports differ"
done
for f in vocab.json merges.txt; do
  cmp -s $REF/lm/$f "$T/exp_lm/$f" && ok "tokenizer $f survives byte for byte" || bad "tokenizer $f differs"
done
[ ! -e "$T/exp_score/vocab.json" ] && ok "no tokenizer, no tokenizer files" || bad "score export invented a tokenizer"
grep -q '"GPT2LMHeadModel"' "$T/exp_lm/config.json" && grep -q '"eos_token_id": 95' "$T/exp_lm/config.json" \
  && ok "lm config.json: architecture, eos id from vocab.json" || bad "lm config.json: $(cat "$T/exp_lm/config.json")"
grep -q '"GPT2ForSequenceClassification"' "$T/exp_score/config.json" && grep -q '"LABEL_0"' "$T/exp_score/config.json" \
  && ok "score config.json: one label" || bad "score config.json"
head -c 400 "$T/exp_lm/model.safetensors" | grep -q '"transformer.h.0.attn.c_attn.bias"' \
  && ! grep -q 'lm_head' "$T/exp_lm/model.safetensors" && grep -q '"format":"pt"' "$T/exp_lm/model.safetensors" \
  && ok "model.safetensors: transformer. keys, tied head, format pt" || bad "model.safetensors keys"
"$LP" "$T/lm2.h5" <$REF/tokens.jsonl >"$T/lp_lm2" 2>&1
cmp -s "$T/lp_lm" "$T/lp_lm2" && ok "re-imported model gives identical log-probs" || bad "re-imported log-probs differ"

# a run directory works as CKPT
mkdir -p "$T/run" && cp "$T/lm.h5" "$T/run/ckpt-00000000.h5"
"$LP" "$T/run" <$REF/tokens.jsonl >"$T/lp_run" 2>&1
cmp -s "$T/lp_lm" "$T/lp_run" && ok "a run directory resolves to its checkpoint" || bad "run directory: $(head -3 "$T/lp_run")"

# ---- bad HF folders ----
mkhf() { rm -rf "$T/bad"; cp -r $REF/$1 "$T/bad"; }
expect_fail "import: no folder" "not a directory" "$HF" import "$T/nope" "$T/x.h5"
mkhf lm; sed -i 's/"layer_norm_epsilon": 1e-05/"layer_norm_epsilon": 1e-06/' "$T/bad/config.json"
expect_fail "import: epsilon 1e-6" "layer_norm_epsilon" "$HF" import "$T/bad" "$T/x.h5"
mkhf lm; sed -i 's/"gelu_new"/"relu"/' "$T/bad/config.json"
expect_fail "import: relu" "activation_function relu" "$HF" import "$T/bad" "$T/x.h5"
mkhf lm; sed -i 's/"n_layer": 2/"n_layer": 3/' "$T/bad/config.json"
expect_fail "import: n_layer 3 (tensors missing)" 'missing tensor "h.2.ln_1.weight"' "$HF" import "$T/bad" "$T/x.h5"
mkhf lm; sed -i 's/"n_layer": 2/"n_layer": 1/' "$T/bad/config.json"
expect_fail "import: n_layer 1 (extra tensors)" 'unexpected tensor "h.1.' "$HF" import "$T/bad" "$T/x.h5"
mkhf lm; sed -i 's/"n_embd": 32/"n_embd": 64/' "$T/bad/config.json"
expect_fail "import: n_embd 64 (shapes)" "has shape (96,32), expected (96,64)" "$HF" import "$T/bad" "$T/x.h5"
mkhf lm; sed -i 's/"vocab_size": 96/"vocab_size": 97/' "$T/bad/config.json"
expect_fail "import: vocab 97" "expected (97,32)" "$HF" import "$T/bad" "$T/x.h5"
mkhf lm; echo '{"n_embd": 32,' >"$T/bad/config.json"
expect_fail "import: broken config.json" "invalid JSON" "$HF" import "$T/bad" "$T/x.h5"
mkhf lm; sed -i 's/"model_type": "gpt2"/"model_type": "mistral"/' "$T/bad/config.json"
expect_fail "import: mistral" "model_type mistral is not supported" "$HF" import "$T/bad" "$T/x.h5"
mkhf lm; sed -i 's/"model_type": "gpt2"/"model_type": "llama"/' "$T/bad/config.json"
expect_fail "import: GPT-2 class as llama" 'not supported for model_type llama' "$HF" import "$T/bad" "$T/x.h5"
mkhf score; sed -i 's/"0": "LABEL_0"/"0": "LABEL_0", "1": "LABEL_1"/' "$T/bad/config.json"
expect_fail "import: two labels" "2 labels" "$HF" import "$T/bad" "$T/x.h5"
mkhf lm; head -c 5000 $REF/lm/model.safetensors >"$T/bad/model.safetensors"
expect_fail "import: truncated safetensors" "beyond the" "$HF" import "$T/bad" "$T/x.h5"
mkhf lm; rm "$T/bad/model.safetensors"; echo '{}' >"$T/bad/model.safetensors.index.json"
expect_fail "import: index without weight_map" '"weight_map"' "$HF" import "$T/bad" "$T/x.h5"
expect_fail "import: unwritable output" "cannot create" "$HF" import $REF/lm "$T/no/such/dir/x.h5"
[ ! -e "$T/x.h5" ] && ok "failed imports leave no output" || bad "a failed import left $T/x.h5"

# ---- bad checkpoints ----
head -c 3000 "$T/lm.h5" >"$T/trunc.h5"
expect_fail "export: truncated checkpoint" "truncated" "$HF" export "$T/trunc.h5" "$T/e"
echo "not a checkpoint" >"$T/text.h5"
expect_fail "logprobs: text file" "not an HDF5 file" "$LP" "$T/text.h5"
expect_fail "export: missing group" "no group /value" "$HF" export "$T/lm.h5" "$T/e" --group value
expect_fail "logprobs: empty run dir" "holds no checkpoint" "$LP" "$T/exp_lm"

# ---- bad input lines: error with the line number, output so far kept ----
lp_bad() { printf '%s\n' "[1,2,3]" "$2" | "$LP" "$T/lm.h5" >"$T/o" 2>"$T/e"; local rc=$?
  if [ $rc -ne 0 ] && grep -qF "stdin:2:" "$T/e" && grep -qF -- "$3" "$T/e" && [ "$(wc -l <"$T/o")" -eq 1 ]; then
    ok "$1 ($(tr '\n' ' ' <"$T/e"))"; else bad "$1: rc $rc, $(cat "$T/e")"; fi; }
lp_bad "input: not JSON" "[1,x]" "invalid JSON"
lp_bad "input: not an array" '{"tokens":[1]}' "expected a JSON array"
lp_bad "input: empty array" "[]" "between 1 and max_seq_len = 32"
lp_bad "input: too long" "[$(seq -s, 0 32)]" "33 tokens"
lp_bad "input: id out of range" "[1,96]" "token 1 = 96 is outside [0, 96)"
lp_bad "input: negative id" "[-1]" "outside"
lp_bad "input: non-integer" "[1.5]" "not an integer"
lp_bad "input: blank line" "" "invalid JSON"

echo "t_hf: $checks checks, $failed failed"
[ "$failed" -eq 0 ]
