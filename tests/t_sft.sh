#!/usr/bin/env bash
# tests/t_sft.sh — the SFT and reward-model stages end to end with real mpirun:
#   - SFT on the bundled task lowers the loss;
#   - resume is bit-exact: N steps == N/2 steps (run.stop_at_step) + resume=auto + N/2
#     (weights, AdamW m/v/step and the logged losses), with 1 and with 2 learner ranks;
#   - train.recompute=true (activation recomputation) gives the same checkpoint and logged
#     metrics as off, for SFT (LM head) and the reward model (score head);
#   - the reward model trains from the SFT checkpoint (new score head), reports held-out
#     accuracy per category, and resumes bit-exactly;
#   - user errors (missing data file, unknown config key) give a clear message, exit != 0.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_sft.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
MPIRUN="mpirun --oversubscribe -np"
fail() { echo "FAIL: $*"; exit 1; }

"$B/rlhf-task" gen --out "$T/data" --seed 7 --sizes sft=400,prefs=300,prefs_eval=60,prompts=20,prompts_eval=10,redteam=5 >/dev/null
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1

COMMON="tokenizer.path=$T/tok model.preset=custom model.n_layer=2 model.n_head=2 model.n_embd=32
  model.max_seq_len=64 data.max_prompt_len=32 data.max_response_len=32 optim.batch_size=8
  optim.steps=8 optim.warmup_steps=2 optim.lr=3e-3 optim.min_lr=3e-4 run.log_every=2 gen.max_new_tokens=32
  run.ckpt_every=0 run.eval_every=4"
SFT="configs/sft.ini data.train=$T/data/sft.jsonl data.eval=$T/data/sft.jsonl $COMMON"

strip_time() { sed -E 's/"time": [0-9.]+, //' "$1"; }

for np in 1 2; do
  echo "== SFT, $np learner rank(s): full run vs stop at 4 + resume"
  $MPIRUN $np "$B/learner" sft $SFT run.out_dir="$T/full$np" > "$T/full$np.log" 2>&1 || { cat "$T/full$np.log"; fail "sft run"; }
  $MPIRUN $np "$B/learner" sft $SFT run.out_dir="$T/half$np" run.stop_at_step=4 > "$T/half$np.log" 2>&1 || { cat "$T/half$np.log"; fail "sft half run"; }
  grep -q "stopping at step 4" "$T/half$np.log" || fail "no stop at step 4"
  [ -f "$T/half$np/ckpt-00000008.h5" ] && fail "the stopped run went on"
  $MPIRUN $np "$B/learner" sft $SFT run.out_dir="$T/half$np" run.resume=auto > "$T/resume$np.log" 2>&1 || { cat "$T/resume$np.log"; fail "sft resume"; }
  grep -q "resumed from .*ckpt-00000004.h5 at step 4" "$T/resume$np.log" || { cat "$T/resume$np.log"; fail "did not resume at 4"; }
  "$B/rlhf-ckpt" diff "$T/full$np/ckpt-00000008.h5" "$T/half$np/ckpt-00000008.h5" || fail "resumed SFT ($np ranks) is not bit-identical"
  diff <(strip_time "$T/full$np/metrics.jsonl") <(strip_time "$T/half$np/metrics.jsonl") || fail "logged metrics differ after resume ($np ranks)"
done

echo "== SFT with activation recomputation: the same bits as without"
$MPIRUN 1 "$B/learner" sft $SFT run.out_dir="$T/recomp" train.recompute=true > "$T/recomp.log" 2>&1 || { cat "$T/recomp.log"; fail "sft run with train.recompute"; }
"$B/rlhf-ckpt" diff "$T/full1/ckpt-00000008.h5" "$T/recomp/ckpt-00000008.h5" || fail "SFT with train.recompute=true is not bit-identical"
diff <(strip_time "$T/full1/metrics.jsonl") <(strip_time "$T/recomp/metrics.jsonl") || fail "logged metrics differ with train.recompute=true"

echo "== SFT lowers the loss"
first=$(grep -m1 '"loss"' "$T/full1/metrics.jsonl" | sed -E 's/.*"loss": ([0-9.e+-]+).*/\1/')
last=$(grep '"loss"' "$T/full1/metrics.jsonl" | tail -1 | sed -E 's/.*"loss": ([0-9.e+-]+).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.3) }' || fail "loss did not fall: $first -> $last"
echo "loss $first -> $last"

echo "== 1 vs 2 ranks agree up to float summation order"
grep '"eval_loss"' "$T/full1/metrics.jsonl" | tail -1 > "$T/e1"
grep '"eval_loss"' "$T/full2/metrics.jsonl" | tail -1 > "$T/e2"
e1=$(sed -E 's/.*"eval_loss": ([0-9.e+-]+).*/\1/' "$T/e1"); e2=$(sed -E 's/.*"eval_loss": ([0-9.e+-]+).*/\1/' "$T/e2")
awk -v a="$e1" -v b="$e2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-3) }' || fail "eval loss 1 rank $e1 vs 2 ranks $e2"
echo "eval loss: 1 rank $e1, 2 ranks $e2"

echo "== reward model from the SFT checkpoint"
RM="configs/rm.ini data.train=$T/data/prefs_train.jsonl data.eval=$T/data/prefs_eval.jsonl
  model.init=$T/full1/ckpt-00000008.h5 tokenizer.path= data.max_prompt_len=32 data.max_response_len=32 gen.max_new_tokens=32
  optim.batch_size=8 optim.steps=6 optim.warmup_steps=1 optim.lr=1e-3 optim.min_lr=1e-4 run.ckpt_every=0
  run.eval_every=0 run.log_every=2 rm.normalize=true"
$MPIRUN 2 "$B/learner" rm $RM run.out_dir="$T/rm" > "$T/rm.log" 2>&1 || { cat "$T/rm.log"; fail "rm run"; }
grep -q "new head initialised" "$T/rm.log" || fail "rm did not start from the SFT trunk"
grep -q '"eval_accuracy"' "$T/rm/metrics.jsonl" || fail "no held-out accuracy logged"
grep '"eval_accuracy"' "$T/rm/metrics.jsonl" | tail -1 | grep -q '"per_category": {"' || fail "no per-category metrics"
"$B/rlhf-ckpt" info "$T/rm" | grep -q "/reward: score head" || fail "rm checkpoint has no score head"
$MPIRUN 2 "$B/learner" rm $RM run.out_dir="$T/rmh" run.stop_at_step=3 > "$T/rmh.log" 2>&1 || { cat "$T/rmh.log"; fail "rm half"; }
$MPIRUN 2 "$B/learner" rm $RM run.out_dir="$T/rmh" run.resume=auto > "$T/rmr.log" 2>&1 || { cat "$T/rmr.log"; fail "rm resume"; }
"$B/rlhf-ckpt" diff "$T/rm" "$T/rmh" || fail "resumed RM is not bit-identical"
$MPIRUN 2 "$B/learner" rm $RM run.out_dir="$T/rmrc" train.recompute=true > "$T/rmrc.log" 2>&1 || { cat "$T/rmrc.log"; fail "rm with train.recompute"; }
"$B/rlhf-ckpt" diff "$T/rm" "$T/rmrc" || fail "RM with train.recompute=true is not bit-identical"

echo "== user errors"
if "$B/learner" sft $SFT data.train="$T/nope.jsonl" run.out_dir="$T/e" > "$T/err1" 2>&1; then fail "missing file accepted"; fi
grep -q "nope.jsonl" "$T/err1" || { cat "$T/err1"; fail "missing file not named"; }
if "$B/learner" sft $SFT optim.lrr=1 run.out_dir="$T/e" > "$T/err2" 2>&1; then fail "unknown key accepted"; fi
grep -q "optim.lr" "$T/err2" || { cat "$T/err2"; fail "no suggestion for optim.lrr"; }
echo "t_sft: all checks passed"
