#!/usr/bin/env bash
# tests/t_chat_data.sh — conversational datasets through build/learner sft end to end:
# the task's SFT file rewritten as TRL {"messages": [user, assistant]} records and trained
# with chat.template=plain must give a checkpoint bit-identical to the plain
# {"prompt", "response"} file (plain rendering of one user + one assistant turn is the
# plain record); the same records under chat.template=auto with a model that carries no
# chat template stop the run with the message that names chat.template; with
# chat.template=chatml the run trains on the rendered conversation.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_chat_data.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$B/rlhf-task" gen --out "$T/data" --seed 7 --sizes sft=200,prefs=20,prefs_eval=10,prompts=10,prompts_eval=5,redteam=5 >/dev/null 2>&1
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1
# {"prompt":P,"response":R,...} -> {"messages":[{"role":"user","content":P},{"role":"assistant","content":R}],...}
STR='"([^"\\]|\\.)*"'
sed -E "s/^\{\"prompt\":($STR),\"response\":($STR)/{\"messages\":[{\"role\":\"user\",\"content\":\1},{\"role\":\"assistant\",\"content\":\3}]/" \
  "$T/data/sft.jsonl" > "$T/messages.jsonl"
n=$(grep -c '^{"messages":\[{"role":"user"' "$T/messages.jsonl")
[ "$n" = 200 ] || fail "rewrote $n of 200 records"

SFT="configs/sft.ini tokenizer.path=$T/tok model.preset=custom model.n_layer=2 model.n_head=2
  model.n_embd=32 model.max_seq_len=64 data.max_prompt_len=32 data.max_response_len=32
  optim.batch_size=8 optim.steps=6 optim.warmup_steps=2 run.log_every=2 run.ckpt_every=0
  run.eval_every=0 run.bad_data=fail gen.max_new_tokens=32"
echo "== plain records vs messages records rendered with chat.template=plain"
"$B/learner" sft $SFT data.train="$T/data/sft.jsonl" run.out_dir="$T/plain" > "$T/plain.log" 2>&1 || { cat "$T/plain.log"; fail "plain run"; }
"$B/learner" sft $SFT data.train="$T/messages.jsonl" chat.template=plain run.out_dir="$T/msg" > "$T/msg.log" 2>&1 || { cat "$T/msg.log"; fail "messages run"; }
"$B/rlhf-ckpt" diff "$T/plain/ckpt-00000006.h5" "$T/msg/ckpt-00000006.h5" || fail "messages + plain template is not the plain run"

echo "== chat.template=auto without a model template: the run stops and says what to set"
if "$B/learner" sft $SFT data.train="$T/messages.jsonl" run.out_dir="$T/auto" > "$T/auto.log" 2>&1; then
  fail "auto without a template ran"
fi
grep -q "messages.jsonl:1: a conversational record (message lists) needs a chat template: chat.template = auto, but the model carries no chat template" "$T/auto.log" || { cat "$T/auto.log"; fail "no chat.template message"; }

echo "== chat.template=chatml trains on the rendered conversation"
"$B/learner" sft $SFT data.train="$T/messages.jsonl" chat.template=chatml data.max_prompt_len=48 model.max_seq_len=96 run.out_dir="$T/chatml" > "$T/chatml.log" 2>&1 || { cat "$T/chatml.log"; fail "chatml run"; }
[ -f "$T/chatml/ckpt-00000006.h5" ] || fail "no chatml checkpoint"
"$B/rlhf-ckpt" diff "$T/plain/ckpt-00000006.h5" "$T/chatml/ckpt-00000006.h5" >/dev/null 2>&1 && fail "chatml rendering changed nothing"
echo "t_chat_data: ok"
