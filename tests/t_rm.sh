#!/usr/bin/env bash
# tests/t_rm.sh — the reward model's held-out report, checked against files whose answers
# are known:
#   - trained from scratch on pairs whose chosen answer is the task's ideal one, the
#     accuracy on HELD-OUT pairs of the same kind (prefs_eval, never trained on) reaches
#     0.7. Measured: 0.80 on 79 held-out pairs, where chance is 0.5 +- 0.06 (1 s.e.); the
#     same run at lr 0 scores 0.49;
#   - a hand-made file of 2 + 3 + 1 pairs in three categories (and one without a category):
#     the per-category pair counts are exactly those, each accuracy is a multiple of
#     1/pairs, and the overall numbers are the pair-weighted means of the categories.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_rm.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
fail() { echo "FAIL: $*"; exit 1; }

"$B/rlhf-task" gen --out "$T/data" --seed 5 --sizes sft=200,prefs=600,prefs_eval=300,prompts=10,prompts_eval=5,redteam=5 >/dev/null
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1
MODEL="tokenizer.path=$T/tok model.preset=custom model.n_layer=2 model.n_head=2 model.n_embd=32
  model.max_seq_len=64 data.max_prompt_len=32 data.max_response_len=32 gen.max_new_tokens=32
  run.ckpt_every=0 run.log_every=10"

echo "== held-out accuracy of a reward model trained on ideal-vs-other pairs"
# the pairs the task's gold judge orders without doubt: chosen = the ideal answer
grep '"chosen_quality":"ideal"' "$T/data/prefs_train.jsonl" > "$T/toy.jsonl"
grep '"chosen_quality":"ideal"' "$T/data/prefs_eval.jsonl" > "$T/heldout.jsonl"
nev=$(wc -l < "$T/heldout.jsonl")
[ "$(wc -l < "$T/toy.jsonl")" -ge 100 ] && [ "$nev" -ge 60 ] || fail "too few ideal-chosen pairs"
mpirun --oversubscribe -np 2 "$B/learner" rm configs/rm.ini $MODEL model.init= data.train="$T/toy.jsonl" \
  data.eval="$T/heldout.jsonl" optim.batch_size=16 optim.steps=80 optim.warmup_steps=2 optim.lr=3e-3 \
  optim.min_lr=3e-4 run.eval_every=0 rm.normalize=false run.out_dir="$T/toy" > "$T/toy.log" 2>&1 || { cat "$T/toy.log"; fail "rm run"; }
line=$(grep '"eval_accuracy"' "$T/toy/metrics.jsonl" | tail -1)
acc=$(echo "$line" | sed -E 's/.*"eval_accuracy": ([0-9.]+).*/\1/')
echo "$line" | grep -q "\"eval_pairs\": $nev" || fail "held-out pairs: expected $nev: $line"
echo "held-out accuracy: $acc ($nev pairs)"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.7) }' || fail "held-out accuracy $acc < 0.7"

echo "== per-category metrics on a hand-made file"
P='"prompt": "User: hi\nAssistant:"'
{
  for c in fact fact instruct instruct instruct chat; do
    echo "{$P, \"chosen\": \" Hello! How can I help?\", \"rejected\": \" Go away.\", \"category\": \"$c\"}"
  done
  echo "{$P, \"chosen\": \" Hi there.\", \"rejected\": \" Whatever.\"}"
} > "$T/hand.jsonl"
mpirun --oversubscribe -np 1 "$B/learner" rm configs/rm.ini $MODEL model.init= data.train="$T/toy.jsonl" \
  data.eval="$T/hand.jsonl" optim.batch_size=4 optim.steps=2 optim.warmup_steps=0 run.eval_every=0 \
  rm.normalize=false run.out_dir="$T/hand" > "$T/hand.log" 2>&1 || { cat "$T/hand.log"; fail "hand rm"; }
line=$(grep '"eval_accuracy"' "$T/hand/metrics.jsonl" | tail -1)
for spec in fact:2 instruct:3 chat:1 none:1; do
  c=${spec%%:*}; n=${spec##*:}
  echo "$line" | grep -q "\"$c\": {\"accuracy\": [0-9.]*, \"margin\": [-0-9.e]*, \"loss\": [0-9.]*, \"pairs\": $n}" \
    || fail "category $c should hold $n pairs: $line"
done
echo "$line" | grep -q '"eval_pairs": 7' || fail "overall should hold 7 pairs"
# identical pairs score identically: every category's accuracy is all-or-nothing here
# except "none"; the overall accuracy is the pair-weighted mean of the categories
python_free_check=$(echo "$line" | sed -E 's/.*"eval_accuracy": ([0-9.]+).*"fact": \{"accuracy": ([0-9.]+).*"instruct": \{"accuracy": ([0-9.]+).*"chat": \{"accuracy": ([0-9.]+).*"none": \{"accuracy": ([0-9.]+).*/\1 \2 \3 \4 \5/')
read -r all f i ch no <<< "$python_free_check"
awk -v a="$all" -v f="$f" -v i="$i" -v c="$ch" -v n="$no" 'BEGIN {
  m = (2*f + 3*i + c + n) / 7; d = a - m; if (d < 0) d = -d; if (d > 1e-5) exit 1
  if (f != i || i != c) exit 1 }' || fail "per-category accuracies inconsistent: $line"
echo "t_rm: all checks passed"
