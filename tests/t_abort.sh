#!/usr/bin/env bash
# tests/t_abort.sh — an internal error (fatal(), common/util.h) on one rank of an MPI job
# ends the whole job, with a message naming that rank, its role and the file:line:
#   - a 2-rank SFT job whose rank 1 alone has RLHF_FAULT_FATAL=train_step:2 (common/fault.h:
#     fatal() on the 2nd optimizer step, before the gradient all-reduce that rank 0 is
#     already waiting in) exits non-zero through MPI_Abort;
#   - the line is "rlhf-c: [rank 1 role learner] common/fault.c:N: fault injection: ..."
#     (only mpi_fatal prints this prefix, and it always ends in MPI_Abort; Open MPI's own
#     "MPI_ABORT was invoked" notice is not checked: its help-text system can drop it);
#   - rank 0 never finished (no final checkpoint).
# The peer timeout is off (RLHF_PEER_TIMEOUT=0), so the job cannot end through the
# watchdog: only the abort can end it. The outer timeout is a hang guard, not a measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_abort.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export RLHF_PEER_TIMEOUT=0
fail() { echo "FAIL: $*"; exit 1; }

"$B/rlhf-task" gen --out "$T/data" --seed 3 --sizes sft=100,prefs=10,prefs_eval=5,prompts=5,prompts_eval=5,redteam=5 >/dev/null
"$B/rlhf-tokenize" train --vocab-size 300 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1
SFT="configs/sft.ini data.train=$T/data/sft.jsonl data.eval= tokenizer.path=$T/tok
  model.preset=custom model.n_layer=1 model.n_head=2 model.n_embd=16 model.max_seq_len=64
  data.max_prompt_len=32 data.max_response_len=32 gen.max_new_tokens=32 optim.batch_size=4 optim.steps=6
  optim.warmup_steps=1 run.ckpt_every=0 run.eval_every=0 run.log_every=1 run.out_dir=$T/run"

echo "== fatal() on learner rank 1 at its 2nd step ends the 2-rank job"
set +e
timeout 300 mpirun --oversubscribe -np 1 "$B/learner" sft $SFT \
  : -np 1 env RLHF_FAULT_FATAL=train_step:2 "$B/learner" sft $SFT > "$T/job.log" 2>&1
rc=$?
set -e
[ $rc -ne 124 ] || { cat "$T/job.log"; fail "the job hung: rank 0 was left waiting"; }
[ $rc -ne 0 ] || { cat "$T/job.log"; fail "the job exited 0"; }
line=$(grep -m1 'fault injection' "$T/job.log" || true)
echo "exit $rc: $line"
echo "$line" | grep -Eq '^rlhf-c: \[rank 1 role learner\] common/fault\.c:[0-9]+: fault injection: internal error at train_step \(visit 2' \
  || { cat "$T/job.log"; fail "no message naming rank 1, its role and file:line"; }
grep -q 'sft step 1/6' "$T/job.log" || { cat "$T/job.log"; fail "the fault did not strike mid-run (no step 1)"; }
ls "$T/run"/ckpt-*.h5 > /dev/null 2>&1 && fail "rank 0 went on and wrote a checkpoint"

echo "== a single-rank run without mpirun names rank, role and file:line too"
set +e
RLHF_FAULT_FATAL=train_step:1 "$B/learner" sft $SFT run.out_dir="$T/one" > "$T/one.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] || fail "single-rank fault: exit 0"
grep -q '^rlhf-c: \[rank 0 role learner\] common/fault\.c:[0-9]*: fault injection' "$T/one.log" \
  || { cat "$T/one.log"; fail "single-rank fault: no rank/role/file:line message"; }
echo "t_abort: all checks passed"
