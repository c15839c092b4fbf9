#!/usr/bin/env bash
# tests/t_eval.sh — build/rlhf-eval end to end on a small trained model, and the feedback
# loop it feeds (candidates -> rlhf-judge -> reward model):
#   - a model evaluated against itself: win rate exactly 0.5 (same sampling keys), KL ~ 0;
#   - the --oracle row (the task's ideal responses) scores gold 1 and wins against SFT;
#   - --temperature != 1 runs (the KL then needs a teacher-forced pass at T = 1);
#   - --candidates pairs two samples per prompt; rlhf-judge labels them; the RM trains on it;
#   - bad input (--k 1 with --candidates, a prompt outside the task) fails with a message
#     that names the problem and the prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_eval.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
MPIRUN="mpirun --oversubscribe -np"
fail() { echo "FAIL: $*"; exit 1; }
col() { awk -v c="$1" -v m="$2" '$1 == m && $2 == "all" { print $c }'; } # column c of model m's "all" row

"$B/rlhf-task" gen --out "$T/data" --seed 11 --sizes sft=300,prefs=200,prefs_eval=40,prompts=20,prompts_eval=12,redteam=5 >/dev/null
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1
MODEL="model.preset=custom model.n_layer=2 model.n_head=2 model.n_embd=32 model.max_seq_len=96
  data.max_prompt_len=32 data.max_response_len=32"
$MPIRUN 1 "$B/learner" sft configs/sft.ini tokenizer.path="$T/tok" $MODEL data.train="$T/data/sft.jsonl" \
  data.eval= optim.batch_size=8 optim.steps=30 optim.lr=3e-3 run.ckpt_every=0 run.out_dir="$T/sft" > "$T/sft.log" 2>&1 || { cat "$T/sft.log"; fail sft; }
EV="$B/rlhf-eval --prompts $T/data/prompts_eval.jsonl --task-seed 11 --k 4 --max-new 24"

echo "== a model against itself: win 0.5, KL 0; the oracle row"
$EV --baseline "sft=$T/sft" --model "same=$T/sft" --oracle ideal --out "$T/eval.jsonl" > "$T/tab.txt" 2> "$T/e.log" || { cat "$T/e.log"; fail "rlhf-eval"; }
cat "$T/tab.txt"
win=$(col 4 same < "$T/tab.txt"); kl=$(col 6 same < "$T/tab.txt")
[ "$win" = "0.500" ] || fail "self win rate $win, expected 0.500"
awk -v k="$kl" 'BEGIN { exit !(k < 0.01 && k > -0.01) }' || fail "self KL $kl, expected ~0"
[ "$(col 3 ideal < "$T/tab.txt")" = "1.000" ] || fail "oracle gold is not 1.000"
awk -v w="$(col 4 ideal < "$T/tab.txt")" -v g="$(col 3 sft < "$T/tab.txt")" 'BEGIN { exit !(w > 0.5 && g < 1) }' ||
  fail "the oracle does not beat a 30-step SFT model"
[ "$(grep -c '"category": "all"' "$T/eval.jsonl")" = 3 ] || fail "eval.jsonl: expected 3 'all' rows"

echo "== temperature 0.7 and comparison candidates"
$EV --baseline "sft=$T/sft" --temperature 0.7 --candidates "$T/cand.jsonl" > "$T/tab7.txt" 2> "$T/e7.log" || { cat "$T/e7.log"; fail "rlhf-eval --temperature 0.7"; }
n=$(wc -l < "$T/cand.jsonl")
grep -q "rlhf-eval: $n comparison candidates" "$T/e7.log" || { cat "$T/e7.log"; fail "candidate count not reported"; }
[ "$n" -gt 0 ] && [ "$n" -le 24 ] || fail "$n candidates (12 prompts x 2 pairs at most)"
grep -q '"a":' "$T/cand.jsonl" && grep -q '"b":' "$T/cand.jsonl" && grep -q '"id":"sft-' "$T/cand.jsonl" || fail "candidate fields"
"$B/rlhf-judge" --judge gold --task-seed 11 --annotators 2 --tau 0.05 --time 2026-01-01T00:00:00Z "$T/cand.jsonl" > "$T/labels.jsonl" 2>/dev/null || fail "rlhf-judge on the candidates"
cat "$T/data/prefs_train.jsonl" "$T/labels.jsonl" > "$T/rm_train.jsonl"
$MPIRUN 1 "$B/learner" rm configs/rm.ini model.init="$T/sft" tokenizer.path= $MODEL data.train="$T/rm_train.jsonl" \
  data.eval="$T/data/prefs_eval.jsonl" optim.batch_size=8 optim.steps=3 run.eval_every=0 run.ckpt_every=0 run.out_dir="$T/rm" > "$T/rm.log" 2>&1 || { cat "$T/rm.log"; fail "rm on on-policy labels"; }

echo "== bad input"
if $EV --baseline "sft=$T/sft" --k 1 --candidates "$T/c1.jsonl" > /dev/null 2> "$T/b1.log"; then fail "--k 1 --candidates accepted"; fi
grep -q -- "--candidates pairs two samples" "$T/b1.log" || { cat "$T/b1.log"; fail "--k 1 message"; }
printf '{"prompt":"User: What is 2 plus 2?\\nAssistant:"}\n{"prompt":"User: Tell me a poem about the sea.\\nAssistant:"}\n' > "$T/odd.jsonl"
if $B/rlhf-eval --prompts "$T/odd.jsonl" --task-seed 11 --baseline "sft=$T/sft" --k 1 > /dev/null 2> "$T/b2.log"; then fail "non-task prompt accepted"; fi
grep -q 'not a prompt of the bundled task (task seed 11): "User: Tell me a poem' "$T/b2.log" || { cat "$T/b2.log"; fail "non-task prompt message"; }
echo "t_eval: all checks passed"
