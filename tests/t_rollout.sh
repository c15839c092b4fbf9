#!/usr/bin/env bash
# tests/t_rollout.sh — the actor's rollout scheduling end to end: a synchronous GRPO job
# (G = 4 samples per prompt, so every prompt prefills once and its other samples copy the
# cache rows) gives bit-identical checkpoints with gen.batch_size = 0 (a work item's 8
# sequences at once, 2 actors), 3 (in-flight refill of 3 slots, 1 actor) and 1 (one
# sequence at a time, 3 actors), and with 2 reward servers scoring each group's prompt
# once (ppo.shared_prompt = on); another seed gives other weights (the diff can fail).
# With gen.weights = bf16 (the actors decode from bf16 weights, the learner recomputes the
# behaviour log-probs in fp32): 2 actors and 1 actor (in-flight) give bit-identical
# checkpoints, not those of fp32 decoding; gen.bf16_dot = off (each weight widened to
# fp32) gives other weights than the default where the CPU has AVX512-BF16 (the default
# then uses its dot products) and the same where it has not; gen.bf16_dot = on with the
# x86-64-v3 copy of the library (no AVX512-BF16 kernels) ends the job with the reason; the
# actor-vs-learner log-prob gap of both precisions is printed. A tiny custom model after
# 20 SFT steps; real mpirun launches, oversubscribed.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_rollout.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
export RLHF_PEER_TIMEOUT=60
fail() { echo "FAIL: $*"; exit 1; }

"$B/rlhf-task" gen --out "$T/data" --seed 7 --sizes sft=200,prefs=20,prefs_eval=10,prompts=32,prompts_eval=10,redteam=5 >/dev/null
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1
MODEL="model.preset=custom model.n_layer=2 model.n_head=2 model.n_embd=32 model.max_seq_len=64
  data.max_prompt_len=24 data.max_response_len=24 gen.max_new_tokens=24"
mpirun -np 1 "$B/learner" sft configs/sft.ini data.train="$T/data/sft.jsonl" data.eval= \
  tokenizer.path="$T/tok" $MODEL optim.batch_size=16 optim.steps=20 optim.warmup_steps=2 \
  optim.lr=3e-3 optim.min_lr=3e-4 run.log_every=100 run.ckpt_every=0 run.eval_every=0 \
  run.out_dir="$T/sft" > "$T/sft.log" 2>&1 || { cat "$T/sft.log"; fail "sft"; }

RUN="configs/ppo.ini data.train=$T/data/prompts_train.jsonl data.eval= model.init=$T/sft
  $MODEL judge.kind=rule judge.rule=contains:help ppo.reward_ckpt= ppo.ref_ckpt=
  ppo.actor_batch=8 ppo.rollout_batch=32 ppo.minibatch=16 ppo.updates=2 grpo.group_size=4
  optim.lr=1e-3 optim.min_lr=1e-3 run.ckpt_every=0 run.log_every=1"
# grpo ACTORS OUT [overrides...]
grpo() {
  local na=$1 out=$2; shift 2
  timeout 600 mpirun -np 1 "$B/learner" grpo $RUN run.out_dir="$out" "$@" \
    : -np "${NR:-1}" "$B/reward_server" $RUN run.out_dir="$out" "$@" \
    : -np "$na" "$B/actor" $RUN run.out_dir="$out" "$@" > "$out.log" 2>&1 || { cat "$out.log"; fail "grpo run $out"; }
}
echo "== GRPO: gen.batch_size 0 / 3 (in-flight) / 1, 2 / 1 / 3 actors -> bit-identical"
grpo 2 "$T/b0"
grpo 1 "$T/b3" gen.batch_size=3
grpo 3 "$T/b1" gen.batch_size=1
"$B/rlhf-ckpt" diff "$T/b0" "$T/b3" || fail "gen.batch_size=3 (in-flight) differs from all at once"
"$B/rlhf-ckpt" diff "$T/b0" "$T/b1" || fail "gen.batch_size=1 differs from all at once"
echo "== GRPO with ppo.shared_prompt=on: 1 reward server / 2 -> bit-identical"
# the reward server scores each group's prompt once through its KV caches
grpo 2 "$T/o1" ppo.shared_prompt=on
NR=2 grpo 3 "$T/o2" gen.batch_size=3 ppo.shared_prompt=on
"$B/rlhf-ckpt" diff "$T/o1" "$T/o2" || fail "ppo.shared_prompt=on: 2 reward servers differ from 1"
echo "== GRPO with gen.weights=bf16: 2 / 1 actors -> bit-identical, not the fp32 weights"
RLHF_ACTOR_VERBOSE=1 grpo 2 "$T/h2" gen.weights=bf16
grpo 1 "$T/h1" gen.weights=bf16 gen.batch_size=3
"$B/rlhf-ckpt" diff "$T/h2" "$T/h1" || fail "bf16 decoding: 1 actor differs from 2"
if "$B/rlhf-ckpt" diff "$T/b0" "$T/h2" > /dev/null 2>&1; then fail "bf16 decoding gave the fp32 run's weights"; fi
echo "== gen.bf16_dot=off (bf16 weights widened): 1 actor in-flight; vs the default (auto)"
grpo 1 "$T/w1" gen.weights=bf16 gen.bf16_dot=off gen.batch_size=3
if grep -q "AVX512-BF16 dot products" "$T/h2.log"; then
  echo "the default used the AVX512-BF16 dot products: off must give other weights"
  if "$B/rlhf-ckpt" diff "$T/h2" "$T/w1" > /dev/null 2>&1; then fail "gen.bf16_dot=off gave the dot products' weights"; fi
else
  grep -q "bf16 weights widened to fp32" "$T/h2.log" || { cat "$T/h2.log"; fail "the actor did not report its bf16 kernel"; }
  echo "no AVX512-BF16 here: auto widened, so off must give the same weights"
  "$B/rlhf-ckpt" diff "$T/h2" "$T/w1" || fail "gen.bf16_dot=off differs from auto without AVX512-BF16"
fi
if [ -d "$B/lib/glibc-hwcaps/x86-64-v3" ]; then
  echo "== gen.bf16_dot=on where the actor has no AVX512-BF16 (the x86-64-v3 copy): a clear error, the job ends"
  set +e
  LD_LIBRARY_PATH="$B/lib/glibc-hwcaps/x86-64-v3" timeout 120 mpirun -np 1 "$B/learner" grpo $RUN run.out_dir="$T/d1" gen.weights=bf16 gen.bf16_dot=on \
    : -np 1 "$B/reward_server" $RUN run.out_dir="$T/d1" gen.weights=bf16 gen.bf16_dot=on \
    : -np 1 "$B/actor" $RUN run.out_dir="$T/d1" gen.weights=bf16 gen.bf16_dot=on > "$T/d1.log" 2>&1
  rc=$?
  set -e
  [ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$T/d1.log"; fail "gen.bf16_dot=on without AVX512-BF16: exit $rc"; }
  grep -q "gen.bf16_dot = on: this actor's CPU (or its copy of the library) has no AVX512-BF16" "$T/d1.log" ||
    { cat "$T/d1.log"; fail "gen.bf16_dot=on without AVX512-BF16: no reason given"; }
  echo "$(grep -m1 'gen.bf16_dot = on' "$T/d1.log" | cut -c1-160)"
fi
gap() { grep -o '"lp_check_maxdiff": [^,]*' "$1/metrics.jsonl" | cut -d' ' -f2 | tr '\n' ' '; }
echo "actor-vs-learner max |logprob| gap per update: fp32 $(gap "$T/b0")| bf16 $(gap "$T/h2")"
grpo 2 "$T/s9" run.seed=9
if "$B/rlhf-ckpt" diff "$T/b0" "$T/s9" > /dev/null 2>&1; then fail "another seed gave the same weights"; fi
echo "PASS"
