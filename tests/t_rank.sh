#!/usr/bin/env bash
# tests/t_rank.sh — rankings of K responses end to end: the bundled task's rank
# candidates (rlhf-task rank-candidates), simulated annotators that rank them
# (rlhf-judge --rank, Plackett–Luce), `learner rm` trained on the rankings with the
# InstructGPT weighting, and `rlhf-label stats` / `export --rankings` on the same files.
#   - held-out pairwise accuracy against the gold order (100 rankings of 4 = 600 pairs,
#     labelled at τ = 0) beats chance clearly: >= 0.62, where chance is 0.5 and one
#     standard error is about 0.02 (measured: 0.715 after 60 steps);
#   - the report counts exactly the held-out pairs and rankings, per category too;
#   - Kendall tau-b and Krippendorff's alpha: identical annotators agree at exactly 1,
#     a noisy one less;
#   - export --rankings gives a file learner rm reads; a pair file as data.eval next to a
#     ranking data.train, and a bad ranking line, stop the run with file:line messages.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_rank.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
fail() { echo "FAIL: $*"; exit 1; }

"$B/rlhf-task" gen --out "$T/data" --seed 5 --sizes sft=200,prefs=100,prefs_eval=50,prompts=10,prompts_eval=5,redteam=5 >/dev/null
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1
"$B/rlhf-task" rank-candidates --seed 5 --n 400 --k 4 > "$T/cand_train.jsonl"
"$B/rlhf-task" rank-candidates --seed 5 --n 100 --k 4 --stream 1 > "$T/cand_eval.jsonl"
MODEL="tokenizer.path=$T/tok model.preset=custom model.n_layer=2 model.n_head=2 model.n_embd=32
  model.max_seq_len=64 data.max_prompt_len=32 data.max_response_len=32 gen.max_new_tokens=32
  run.ckpt_every=0 run.log_every=10"

echo "== simulated annotators rank the task's candidates"
"$B/rlhf-judge" --rank --judge gold --task-seed 5 --annotators 2 --tau 0.05,0.1 --flip 0.05 \
  --time 2024-01-01T00:00:00Z "$T/cand_train.jsonl" > "$T/train.jsonl" 2>"$T/judge.err"
"$B/rlhf-judge" --rank --judge gold --task-seed 5 --tau 0 --time 2024-01-01T00:00:00Z \
  "$T/cand_eval.jsonl" > "$T/gold.jsonl" 2>/dev/null
[ "$(wc -l < "$T/train.jsonl")" -eq 400 ] || fail "expected 400 rankings"
grep -q '"label":"rank"' "$T/train.jsonl" || fail "no ranking records"
# a different --seed draws different orders; the same seed the same ones
"$B/rlhf-judge" --rank --judge gold --task-seed 5 --annotators 2 --tau 0.05,0.1 --flip 0.05 \
  --time 2024-01-01T00:00:00Z "$T/cand_train.jsonl" 2>/dev/null | cmp -s - "$T/train.jsonl" \
  || fail "rlhf-judge --rank is not reproducible"

echo "== learner rm on the rankings: held-out accuracy against the gold order"
mpirun --oversubscribe -np 2 "$B/learner" rm configs/rm.ini $MODEL model.init= data.train="$T/train.jsonl" \
  data.eval="$T/gold.jsonl" optim.batch_size=16 optim.steps=60 optim.warmup_steps=2 optim.lr=3e-3 \
  optim.min_lr=3e-4 run.eval_every=0 rm.normalize=false run.out_dir="$T/rm" > "$T/rm.log" 2>&1 \
  || { cat "$T/rm.log"; fail "rm run on rankings"; }
grep -q "400 training rankings" "$T/rm.log" || fail "rankings not detected: $(head -3 "$T/rm.log")"
line=$(grep '"eval_accuracy"' "$T/rm/metrics.jsonl" | tail -1)
acc=$(echo "$line" | sed -E 's/.*"eval_accuracy": ([0-9.]+).*/\1/')
echo "held-out pairwise accuracy: $acc (600 pairs of 100 rankings)"
echo "$line" | grep -q '"eval_pairs": 600' || fail "held-out pairs: expected 600: $line"
echo "$line" | grep -q '"eval_rankings": 100' || fail "held-out rankings: expected 100: $line"
sum=$(echo "$line" | grep -oE '"pairs": [0-9]+' | awk '{ s += $2 } END { print s }')
[ "$sum" -eq 600 ] || fail "per-category pairs sum to $sum, not 600: $line"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.62) }' || fail "held-out accuracy $acc < 0.62"

echo "== Kendall tau-b between annotators"
sed 's/"annotator":"sim0"/"annotator":"twin"/' "$T/gold.jsonl" > "$T/twin.jsonl"
"$B/rlhf-judge" --rank --judge gold --task-seed 5 --tau 0.2 --seed 9 "$T/cand_eval.jsonl" 2>/dev/null \
  | sed 's/"annotator":"sim0"/"annotator":"noisy"/' > "$T/noisy.jsonl"
"$B/rlhf-label" stats "$T/gold.jsonl" "$T/twin.jsonl" > "$T/stats1.out" 2>&1 || fail "stats"
grep -Eq '^sim0 / twin +100 +100 +1\.000$' "$T/stats1.out" || { cat "$T/stats1.out"; fail "identical annotators: tau-b 1"; }
grep -Eq "^Krippendorff's alpha \(ordinal\).* 1\.000$" "$T/stats1.out" || { cat "$T/stats1.out"; fail "identical annotators: alpha 1"; }
"$B/rlhf-label" stats "$T/gold.jsonl" "$T/noisy.jsonl" > "$T/stats2.out" 2>&1 || fail "stats"
tau=$(grep -E '^noisy / sim0' "$T/stats2.out" | awk '{ print $NF }')
awk -v t="$tau" 'BEGIN { exit !(t > 0.2 && t < 0.999) }' || { cat "$T/stats2.out"; fail "noisy tau-b $tau"; }
echo "tau-b gold vs tau=0.2 annotator: $tau"

echo "== export --rankings, and what learner rm refuses"
"$B/rlhf-label" export --rankings "$T/train.jsonl" > "$T/exp.jsonl" 2>/dev/null
[ "$(wc -l < "$T/exp.jsonl")" -eq 400 ] || fail "export --rankings: expected 400 lines"
"$B/rlhf-label" export "$T/train.jsonl" > "$T/pairs.jsonl" 2>/dev/null
npairs=$(sed -nE 's/.*\(([0-9]+) pairs in the file\).*/\1/p' "$T/rm.log")
[ "$(wc -l < "$T/pairs.jsonl")" -eq "$npairs" ] || fail "export pairs $(wc -l < "$T/pairs.jsonl") != $npairs"
grep -q '"weight":0.1666' "$T/pairs.jsonl" || fail "pairs of K = 4 carry weight 1/6"
mpirun --oversubscribe -np 1 "$B/learner" rm configs/rm.ini $MODEL model.init= data.train="$T/exp.jsonl" \
  data.eval= rm.eval_split=0.05 optim.batch_size=4 optim.steps=2 optim.warmup_steps=0 run.eval_every=0 rm.normalize=false \
  run.out_dir="$T/exp" > "$T/exp.log" 2>&1 || { cat "$T/exp.log"; fail "rm on export --rankings"; }
if mpirun --oversubscribe -np 1 "$B/learner" rm configs/rm.ini $MODEL model.init= data.train="$T/exp.jsonl" \
  data.eval="$T/pairs.jsonl" optim.steps=1 run.out_dir="$T/bad1" > "$T/bad1.log" 2>&1; then
  fail "a pair file as data.eval next to rankings was accepted"
fi
grep -q "is not a ranking file" "$T/bad1.log" || { cat "$T/bad1.log"; fail "message for pair data.eval"; }
{ head -2 "$T/exp.jsonl"; echo '{"prompt":"p","responses":["a","b","c"],"ranks":[1,5,2]}'; } > "$T/bad.jsonl"
if mpirun --oversubscribe -np 1 "$B/learner" rm configs/rm.ini $MODEL model.init= data.train="$T/bad.jsonl" \
  data.eval= optim.steps=1 run.out_dir="$T/bad2" > "$T/bad2.log" 2>&1; then
  fail "a bad ranking line was accepted"
fi
grep -q "bad.jsonl:3: ranks\[1\] must be an integer from 1 (best) to 3" "$T/bad2.log" \
  || { cat "$T/bad2.log"; fail "message for a bad ranking line"; }
echo "t_rank: all checks passed"
