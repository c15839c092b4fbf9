#!/usr/bin/env bash
# tests/t_chat_learner.sh — chat-formatted data through the learner, with a tokenizer.json
# built here (the task tokenizer plus the ChatML special tokens <|im_start|> and <|im_end|>)
# and a tokenizer_config.json holding a ChatML chat template, so no download is needed.
# The learner writes every token row it builds (RLHF_DUMP_ROWS) and the rows are compared
# with what build/rlhf-tokenize gives for the pieces of the rendering:
#   - SFT on a two-turn conversation with chat.template unset (auto, from the tokenizer
#     folder's template): <|im_start|> / <|im_end|> are single ids, the learned tokens are
#     exactly both assistant turns with their <|im_end|>, no EOS is appended and nothing
#     after the last <|im_end|> is in the row;
#   - a plain record in the same file whose text holds "<|im_start|>" and "<|endoftext|>"
#     keeps them as ordinary text and ends with EOS;
#   - the reward model on a chat preference record: the prompt is the rendering with the
#     generation prompt, the learned part is the chosen (then rejected) content and its
#     <|im_end|>;
#   - GRPO on chat prompts: each prompt ends with the generation prompt
#     "<|im_start|>assistant\n" and the run stops generation at <|im_end|>'s id;
#   - end to end: the SFT checkpoint carries the template, and an SFT run from it
#     (model.init, chat.template unset) trains on the same rows;
#   - a tokenizer_config.json chat_template list uses its "default" entry; one without a
#     default, or a file that is not JSON, is refused naming the file (and line).
set -uo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 RLHF_PEER_TIMEOUT=60
command -v jq >/dev/null || { echo "SKIP: jq is not installed (tools/deps.sh installs it)"; exit 77; }
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_chat_learner.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
MPIRUN="timeout 300 mpirun --oversubscribe -np"

"$B/rlhf-task" gen --out "$T/data" --seed 7 --sizes sft=50,prefs=20,prefs_eval=10,prompts=16,prompts_eval=5,redteam=2 >/dev/null 2>&1 || fail "rlhf-task gen"
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1 || fail "rlhf-tokenize train"
V=$(jq length "$T/tok/vocab.json")
IMS=$V; IME=$((V + 1))
mkdir -p "$T/tj"
jq -n --slurpfile v "$T/tok/vocab.json" --rawfile m "$T/tok/merges.txt" --argjson s "$IMS" '
  def sp(id; c): {id: id, content: c, single_word: false, lstrip: false, rstrip: false,
                  normalized: false, special: true};
  { version: "1.0", truncation: null, padding: null,
    added_tokens: [sp($v[0]["<|endoftext|>"]; "<|endoftext|>"), sp($s; "<|im_start|>"),
                   sp($s + 1; "<|im_end|>")],
    normalizer: null,
    pre_tokenizer: {type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true},
    post_processor: null,
    decoder: {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true},
    model: {type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "",
            end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab: $v[0],
            merges: ($m | split("\n") | map(select(length > 0 and (startswith("#version") | not))))}
  }' > "$T/tj/tokenizer.json" || fail "building tokenizer.json"
# ChatML without a default system prompt (Qwen1.5's form)
jq -n '{chat_template: "{% for message in messages %}{{'"'"'<|im_start|>'"'"' + message['"'"'role'"'"'] + '"'"'\\n'"'"' + message['"'"'content'"'"'] + '"'"'<|im_end|>'"'"' + '"'"'\\n'"'"'}}{% endfor %}{% if add_generation_prompt %}{{ '"'"'<|im_start|>assistant\\n'"'"' }}{% endif %}"}' \
  > "$T/tj/tokenizer_config.json"
EOS=$(jq '.["<|endoftext|>"]' "$T/tok/vocab.json")

# ids of one JSON string: special-token strings as ids (s) or as text (t)
enc() { printf '%s\n' "$(jq -n --arg x "$2" '$x')" | "$B/rlhf-tokenize" --tokenizer "$T/tj/tokenizer.json" $([ "$1" = s ] && echo --special); }
# expected row from pieces "MODE LEARN TEXT" (one per argument, fields split at the first two spaces)
expect() {
  local toks="[]" learn="[]" p ids
  for p in "$@"; do
    ids=$(enc "${p%% *}" "${p#* * }") || fail "rlhf-tokenize on: ${p#* * }"
    local l=${p#* }; l=${l%% *}
    toks=$(jq -c -n --argjson a "$toks" --argjson b "$ids" '$a + $b')
    learn=$(jq -c -n --argjson a "$learn" --argjson b "$ids" --argjson l "$l" '$a + [$b[] | $l]')
  done
  jq -c -n --argjson t "$toks" --argjson l "$learn" '{tokens: $t, learn: $l}'
}
same_row() { # FILE LINE EXPECTED WHAT
  local got; got=$(sed -n "$2p" "$1" | jq -c '{tokens, learn}')
  [ "$got" = "$3" ] || { echo "got      $got"; echo "expected $3"; fail "$4"; }
}

echo "== special tokens are single ids in the tokenizer.json built here"
ids=$(enc s "<|im_start|>user
hi<|im_end|>") || fail "rlhf-tokenize --special"
[ "$(echo "$ids" | jq -c '[first, last]')" = "[$IMS,$IME]" ] || fail "<|im_start|>/<|im_end|> are not single ids: $ids"

echo "== multi-turn SFT (chat.template=auto from the tokenizer folder) next to a plain record"
U1="Name a colour." A1=" Blue, like the sky." U2="And another?" A2="Green!"
jq -c -n --arg u1 "$U1" --arg a1 "$A1" --arg u2 "$U2" --arg a2 "$A2" '{messages: [
  {role: "user", content: $u1}, {role: "assistant", content: $a1},
  {role: "user", content: $u2}, {role: "assistant", content: $a2}]}' > "$T/sft.jsonl"
PP="Say <|im_start|> please" PR=" ok<|endoftext|> done"
jq -c -n --arg p "$PP" --arg r "$PR" '{prompt: $p, response: $r}' >> "$T/sft.jsonl"
SFT="configs/sft.ini data.train=$T/sft.jsonl data.eval= model.preset=llama-tiny model.max_seq_len=96
  data.max_prompt_len=64 data.max_response_len=32 gen.max_new_tokens=32 data.shuffle=false optim.batch_size=2
  optim.steps=1 optim.warmup_steps=0 run.log_every=1 run.eval_every=0 run.ckpt_every=0 run.bad_data=fail"
RLHF_DUMP_ROWS="$T/sft.rows" $MPIRUN 1 "$B/learner" sft $SFT tokenizer.path="$T/tj" run.out_dir="$T/sft" \
  > "$T/sft.log" 2>&1 || { cat "$T/sft.log"; fail "sft on chat data"; }
[ "$(wc -l < "$T/sft.rows")" = 2 ] || { cat "$T/sft.rows"; fail "expected 2 rows"; }
NL=$'\n'
conv=$(expect "s 0 <|im_start|>user${NL}${U1}<|im_end|>${NL}<|im_start|>assistant${NL}" "s 1 ${A1}<|im_end|>" \
  "s 0 ${NL}<|im_start|>user${NL}${U2}<|im_end|>${NL}<|im_start|>assistant${NL}" "s 1 ${A2}<|im_end|>")
same_row "$T/sft.rows" 1 "$conv" "the conversation row: tokens or loss mask differ"
[ "$(sed -n 1p "$T/sft.rows" | jq '.tokens | map(select(. == '"$EOS"')) | length')" = 0 ] || fail "EOS in a chat row"
plain=$(expect "t 0 $PP" "t 1 $PR")
plain=$(echo "$plain" | jq -c --argjson e "$EOS" '{tokens: (.tokens + [$e]), learn: (.learn + [1])}')
same_row "$T/sft.rows" 2 "$plain" "the plain record's row: special-token text must stay text, EOS at the end"
grep -q "sft step 1/1" "$T/sft.log" || { cat "$T/sft.log"; fail "no sft step"; }

echo "== reward model on a chat preference record: prompt with generation prompt, then the answer"
P1="Which is larger, 3 or 5?" C1="5 is larger." R1="3."
jq -c -n --arg p "$P1" --arg c "$C1" --arg r "$R1" '{prompt: [{role: "user", content: $p}],
  chosen: [{role: "assistant", content: $c}], rejected: [{role: "assistant", content: $r}]}' > "$T/pref.jsonl"
RM="configs/rm.ini data.train=$T/pref.jsonl data.eval=$T/pref.jsonl model.init= model.preset=llama-tiny model.max_seq_len=96
  data.max_prompt_len=64 data.max_response_len=32 gen.max_new_tokens=32 optim.batch_size=1 optim.steps=1 optim.warmup_steps=0
  run.log_every=1 run.eval_every=0 run.ckpt_every=0 run.bad_data=fail"
RLHF_DUMP_ROWS="$T/rm.rows" $MPIRUN 1 "$B/learner" rm $RM tokenizer.path="$T/tj" run.out_dir="$T/rm" \
  > "$T/rm.log" 2>&1 || { cat "$T/rm.log"; fail "rm on chat preferences"; }
GP="<|im_start|>user${NL}${P1}<|im_end|>${NL}<|im_start|>assistant${NL}"
same_row "$T/rm.rows" 1 "$(expect "s 0 $GP" "s 1 ${C1}<|im_end|>")" "the chosen row"
same_row "$T/rm.rows" 2 "$(expect "s 0 $GP" "s 1 ${R1}<|im_end|>")" "the rejected row"

echo "== GRPO on chat prompts: prompts end with the generation prompt, generation stops at <|im_end|>"
head -4 "$T/data/prompts_train.jsonl" | jq -c '{prompt: [{role: "user", content: .prompt}]}' > "$T/prompts.jsonl"
G="configs/grpo.ini data.train=$T/prompts.jsonl data.eval= model.init=$T/sft model.max_seq_len=96
  data.max_prompt_len=64 data.max_response_len=16 gen.max_new_tokens=16 judge.kind=rule judge.rule=contains:help
  ppo.reward_ckpt= ppo.ref_ckpt= ppo.rollout_batch=8 ppo.minibatch=8 ppo.actor_batch=8 grpo.group_size=4
  ppo.updates=1 run.ckpt_every=0 run.eval_every=0 data.shuffle=false"
RLHF_DUMP_ROWS="$T/grpo.rows" timeout 300 mpirun --oversubscribe -np 1 "$B/learner" grpo $G run.out_dir="$T/grpo" \
  : -np 1 "$B/reward_server" $G run.out_dir="$T/grpo" : -np 1 "$B/actor" $G run.out_dir="$T/grpo" \
  > "$T/grpo.log" 2>&1 || { cat "$T/grpo.log"; fail "grpo on chat prompts"; }
grep -q "generation stops at token $IME (<|im_end|>)" "$T/grpo.log" || { cat "$T/grpo.log"; fail "the stop token is not <|im_end|>"; }
[ "$(grep -c '"prompt"' "$T/grpo.rows")" = 2 ] || { cat "$T/grpo.rows"; fail "expected 2 prompts (8 rollouts / group 4)"; }
n=0
while IFS= read -r rec; do
  n=$((n + 1))
  q=$(echo "$rec" | jq -r '.prompt[0].content')
  want=$(enc s "<|im_start|>user${NL}${q}<|im_end|>${NL}<|im_start|>assistant${NL}" | jq -c .)
  got=$(grep '"prompt"' "$T/grpo.rows" | sed -n "${n}p" | jq -c .prompt)
  [ "$got" = "$want" ] || { echo "got $got"; echo "expected $want"; fail "prompt $n is not its ChatML rendering with the generation prompt"; }
  [ $n = 2 ] && break
done < "$T/prompts.jsonl"

echo "== end to end: SFT from a checkpoint holding the ChatML template, chat.template unset"
"$B/rlhf-ckpt" info "$T/sft" > "$T/sft.info" || fail "rlhf-ckpt info"
RLHF_DUMP_ROWS="$T/sft2.rows" $MPIRUN 1 "$B/learner" sft $SFT model.init="$T/sft" tokenizer.path= optim.steps=3 \
  run.out_dir="$T/sft2" > "$T/sft2.log" 2>&1 || { cat "$T/sft2.log"; fail "sft from the checkpoint's template"; }
cmp -s <(head -2 "$T/sft.rows") <(head -2 "$T/sft2.rows") || fail "the checkpoint's template gave other rows"
[ "$(grep -c '"stage": "sft"' "$T/sft2/metrics.jsonl")" = 3 ] || fail "expected 3 sft steps"
grep '"stage": "sft"' "$T/sft2/metrics.jsonl" | grep -q '"loss": null' && fail "non-finite loss"
echo "== tokenizer_config.json: a list of named templates, a bad file refused with its name"
cp -r "$T/tj" "$T/tjbad"
echo '{"chat_template": [{"name": "tool_use", "template": "x"}]}' > "$T/tjbad/tokenizer_config.json"
$MPIRUN 1 "$B/learner" sft $SFT tokenizer.path="$T/tjbad" run.out_dir="$T/bad1" > "$T/bad1.log" 2>&1 && fail "a list without a default chat_template was accepted"
grep -q "tjbad/tokenizer_config.json: field \"chat_template\" must be a string, or a list" "$T/bad1.log" || { cat "$T/bad1.log"; fail "no message naming chat_template"; }
# the "default" entry of a list of named templates is the template: the same rows as before
jq -c '{chat_template: [{name: "tool_use", template: "x"}, {name: "default", template: .chat_template}]}' \
  "$T/tj/tokenizer_config.json" > "$T/tjbad/tokenizer_config.json"
RLHF_DUMP_ROWS="$T/list.rows" $MPIRUN 1 "$B/learner" sft $SFT tokenizer.path="$T/tjbad" run.out_dir="$T/list" \
  > "$T/list.log" 2>&1 || { cat "$T/list.log"; fail "sft with a list of named templates"; }
cmp -s "$T/sft.rows" "$T/list.rows" || fail "the default of a template list gave other rows"
printf '{"chat_template": "x",\n  oops}\n' > "$T/tjbad/tokenizer_config.json"
$MPIRUN 1 "$B/learner" sft $SFT tokenizer.path="$T/tjbad" run.out_dir="$T/bad2" > "$T/bad2.log" 2>&1 && fail "malformed JSON was accepted"
grep -q "tjbad/tokenizer_config.json:2:" "$T/bad2.log" || { cat "$T/bad2.log"; fail "no file:line for malformed JSON"; }
echo "t_chat_learner: ok"
