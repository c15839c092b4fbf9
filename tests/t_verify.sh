#!/usr/bin/env bash
# tests/t_verify.sh — verifiable rewards and reward-model ensembles end to end (real
# MPMD launches: learner, reward server, actors, oversubscribed, on a tiny custom model):
#   - by construction the verifiers cannot see the gold judge or the task world:
#     common/verify.c includes no project header but its own, and its object file calls
#     no task_ or judge_ function;
#   - ensembles in the reward server, 2 reward models trained from different seeds, first
#     GRPO update (synchronous, so every run samples the same rollouts): the same model
#     twice in judge.rm_ckpts scores exactly like it alone (and their logged std rm_std
#     is 0); mean_std with lambda 0 is the average of the two models' scores, lambda 1
#     lower (rm_std > 0); min is at most either model;
#   - judge.kind = mix (verifiers for arith / count / repeat prompts, the ensemble for the
#     rest): every metrics line counts which judge scored the rollouts (judge_n sums to
#     the rollout batch, each verifier used at least once over the run, their mean score
#     a fraction in [0, 1]) and the progress line shows them; gold is monitored;
#   - ppo.shared_prompt: the reward server's KV-cache path (a GRPO group's prompt once)
#     and the batched forward score the first update's rollouts alike (fp32 rounding),
#     with a first-update KL of ~0 either way, and each says which path it took;
#   - a routing table without '*' is refused before any rank starts work, naming
#     judge.route.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_verify.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
export RLHF_PEER_TIMEOUT=60
fail() { echo "FAIL: $*"; exit 1; }
field() { sed -E "s/.*\"$2\": ([-0-9.e+naif]+).*/\1/" "$1"; }

echo "== verifiers see only text"
inc=$(grep -E '^#include "' common/verify.c | grep -v '"verify.h"' || true)
[ -z "$inc" ] || fail "common/verify.c includes project headers: $inc"
obj="$B/obj/common/verify.o"
[ -f "$obj" ] || fail "$obj not built"
bad=$(nm -u "$obj" | grep -E ' (task_|judge_)' || true)
[ -z "$bad" ] || fail "verify.o calls $bad"

"$B/rlhf-task" gen --out "$T/data" --seed 7 --sizes sft=400,prefs=300,prefs_eval=60,prompts=64,prompts_eval=10,redteam=5 >/dev/null
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1
MODEL="model.preset=custom model.n_layer=2 model.n_head=2 model.n_embd=32 model.max_seq_len=64
  data.max_prompt_len=24 data.max_response_len=24 gen.max_new_tokens=24"
echo "== SFT policy and two reward models (seeds 1, 2)"
mpirun -np 1 "$B/learner" sft configs/sft.ini data.train="$T/data/sft.jsonl" data.eval= \
  tokenizer.path="$T/tok" $MODEL optim.batch_size=16 optim.steps=300 optim.warmup_steps=10 \
  optim.lr=3e-3 optim.min_lr=3e-4 run.log_every=100 run.ckpt_every=0 run.eval_every=0 \
  run.out_dir="$T/sft" > "$T/sft.log" 2>&1 || { cat "$T/sft.log"; fail "sft"; }
for s in 1 2; do
  mpirun -np 1 "$B/learner" rm configs/rm.ini data.train="$T/data/prefs_train.jsonl" \
    data.eval="$T/data/prefs_eval.jsonl" model.init="$T/sft" $MODEL optim.batch_size=8 optim.steps=6 \
    optim.warmup_steps=1 optim.lr=1e-3 optim.min_lr=1e-4 run.ckpt_every=0 run.eval_every=0 \
    run.seed=$s rm.normalize=true run.out_dir="$T/rm$s" > "$T/rm$s.log" 2>&1 || { cat "$T/rm$s.log"; fail "rm $s"; }
done

G="configs/grpo.ini data.train=$T/data/prompts_train.jsonl data.eval= model.init=$T/sft $MODEL
  ppo.reward_ckpt= ppo.ref_ckpt= ppo.actor_batch=8 ppo.max_staleness=0 ppo.rollout_batch=32
  ppo.minibatch=16 ppo.epochs=1 grpo.group_size=4 run.ckpt_every=0 run.log_every=1 run.eval_every=0"
# launch OUT [overrides...]: 1 learner, 1 reward server, 2 actors, GRPO
launch() {
  local out=$1; shift
  timeout 300 mpirun -np 1 "$B/learner" grpo $G run.out_dir="$out" "$@" \
    : -np 1 "$B/reward_server" $G run.out_dir="$out" "$@" \
    : -np 2 "$B/actor" $G run.out_dir="$out" "$@"
}
first() { head -1 "$T/$1/metrics.jsonl" | field /dev/stdin score; }

echo "== reward-model ensembles (first update of each run)"
launch "$T/e1" judge.kind=rm ppo.updates=1 ppo.reward_ckpt="$T/rm1" > "$T/e1.log" 2>&1 || { cat "$T/e1.log"; fail "rm1 run"; }
launch "$T/e2" judge.kind=rm ppo.updates=1 judge.rm_ckpts="$T/rm2" > "$T/e2.log" 2>&1 || { cat "$T/e2.log"; fail "rm2 run"; }
launch "$T/e11" judge.kind=rm ppo.updates=1 judge.rm_ckpts="$T/rm1,$T/rm1" > "$T/e11.log" 2>&1 || { cat "$T/e11.log"; fail "rm1,rm1 run"; }
launch "$T/em" judge.kind=rm ppo.updates=1 judge.rm_ckpts="$T/rm1, $T/rm2" judge.ensemble_lambda=0 > "$T/em.log" 2>&1 || { cat "$T/em.log"; fail "mean run"; }
launch "$T/es" judge.kind=rm ppo.updates=1 judge.rm_ckpts="$T/rm1,$T/rm2" judge.ensemble_lambda=1 > "$T/es.log" 2>&1 || { cat "$T/es.log"; fail "mean-std run"; }
launch "$T/en" judge.kind=rm ppo.updates=1 judge.rm_ckpts="$T/rm1,$T/rm2" judge.ensemble=min > "$T/en.log" 2>&1 || { cat "$T/en.log"; fail "min run"; }
sd() { head -1 "$T/$1/metrics.jsonl" | grep -o '"rm_std": [-0-9.e+]*' | sed 's/.*: //'; }
[ -z "$(sd e1)" ] || fail "one reward model logged an ensemble std"
[ "$(sd e11)" = "0.000000" ] || fail "the same model twice disagrees with itself: rm_std $(sd e11)"
awk -v d="$(sd es)" 'BEGIN { exit !(d > 0) }' || fail "two reward models: rm_std '$(sd es)' not positive"
s1=$(first e1); s2=$(first e2); s11=$(first e11); sm=$(first em); ss=$(first es); sn=$(first en)
echo "rm1 $s1, rm2 $s2, rm1+rm1 $s11, mean $sm, mean-std $ss, min $sn"
[ "$s1" = "$s11" ] || fail "rm1 twice ($s11) differs from rm1 alone ($s1)"
awk -v a="$s1" -v b="$s2" 'BEGIN { exit !(a != b) }' || fail "the two reward models agree exactly: not two models"
awk -v a="$s1" -v b="$s2" -v m="$sm" 'BEGIN { d = m - (a + b) / 2; exit !(d < 2e-6 && d > -2e-6) }' \
  || fail "ensemble mean $sm is not the average of $s1 and $s2"
awk -v m="$sm" -v s="$ss" 'BEGIN { exit !(s < m - 1e-4) }' || fail "mean - std ($ss) not below the mean ($sm)"
awk -v a="$s1" -v b="$s2" -v n="$sn" 'BEGIN { exit !(n <= a + 1e-6 && n <= b + 1e-6 && n < (a + b) / 2) }' \
  || fail "min ($sn) above a model's mean score"

echo "== ppo.shared_prompt: the reward server's KV-cache path against the batched forward"
# the first update's rollouts do not depend on the reward server, so both runs score the
# same sequences: one prefill per GRPO group through the reference and the reward model's
# caches (on) against every sequence through the training forward (off) agree to fp32
# rounding; at the first update the policy is the reference, so its KL is ~0 either way
# (a log-prob off by one position would not be)
for m in on off; do
  RLHF_ACTOR_VERBOSE=1 launch "$T/sp_$m" judge.kind=rm ppo.updates=1 ppo.reward_ckpt="$T/rm1" \
    ppo.shared_prompt=$m > "$T/sp_$m.log" 2>&1 || { cat "$T/sp_$m.log"; fail "shared_prompt=$m run"; }
done
grep -q "reward 0: 32 sequences (32 through the KV caches" "$T/sp_on.log" || { grep "reward 0" "$T/sp_on.log"; fail "shared_prompt=on did not use the caches"; }
grep -q "reward 0: 32 sequences (0 through the KV caches" "$T/sp_off.log" || { grep "reward 0" "$T/sp_off.log"; fail "shared_prompt=off used the caches"; }
kl1() { head -1 "$T/$1/metrics.jsonl" | field /dev/stdin kl; }
son=$(first sp_on); soff=$(first sp_off); kon=$(kl1 sp_on); koff=$(kl1 sp_off)
echo "first update: score $son (cache) vs $soff (forward); KL $kon vs $koff"
awk -v a="$son" -v b="$soff" 'BEGIN { d = a - b; exit !(d < 1e-5 && d > -1e-5) }' || fail "scores differ: $son vs $soff"
awk -v a="$kon" -v b="$koff" 'BEGIN { exit !(a < 1e-4 && a > -1e-4 && b < 1e-4 && b > -1e-4) }' \
  || fail "first-update KL not ~0: $kon (cache), $koff (forward)"
[ "$son" = "$s1" ] || awk -v a="$son" -v b="$s1" 'BEGIN { d = a - b; exit !(d < 1e-5 && d > -1e-5) }' \
  || fail "shared_prompt=on score $son vs the default run's $s1"

echo "== judge.kind = mix"
ROUTE="arith:rule:arith, count:rule:count, repeat:rule:repeat, *:rm"
launch "$T/mix" judge.kind=mix judge.route="$ROUTE" judge.rm_ckpts="$T/rm1,$T/rm2" \
  judge.monitor_gold=true ppo.updates=4 > "$T/mix.log" 2>&1 || { cat "$T/mix.log"; fail "mix run"; }
M="$T/mix/metrics.jsonl"
[ "$(grep -c '"judge_n": {' "$M")" -eq 4 ] || fail "expected judge_n in 4 metrics lines"
grep -o '"judge_n": {[^}]*}' "$M" | awk '{ s = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+[,}]$/) s += $i + 0;
  if (s != 32) { print "judge_n sums to " s ": " $0; exit 1 } }' || fail "judge counts do not add up to the rollout batch"
for k in arith count repeat; do
  n=$(grep -o "\"judge_n\": {[^}]*}" "$M" | sed -E "s/.*\"$k\": ([0-9]+).*/\1/" | awk '{ s += $1 } END { print s }')
  [ "$n" -gt 0 ] || fail "no rollout was scored by the $k verifier in 4 updates"
  grep -o "\"judge_score\": {[^}]*}" "$M" | grep -Eo "\"$k\": [-0-9.e+]+" | awk '{ if ($2 < 0 || $2 > 1) exit 1 }' \
    || fail "$k verifier mean score outside [0, 1]"
  echo "$k: $n rollouts"
done
grep -q '"gold_score": ' "$M" || fail "gold not monitored"
grep -q '"rm_std": ' "$M" || fail "no ensemble disagreement (rm_std) logged in the mix run"
grep -Eq '\| arith [0-9]+:[0-9.]+ \| count [0-9]+:[0-9.]+' "$T/mix.log" || fail "no judge counts in the progress line"
grep -E '\| arith ' "$T/mix.log" | tail -1

echo "== a bad routing table is refused"
if launch "$T/bad" judge.kind=mix judge.route="arith:rule:arith" ppo.updates=1 > "$T/bad.log" 2>&1; then
  fail "a route without '*' ran"
fi
grep -q "judge.route" "$T/bad.log" || { cat "$T/bad.log"; fail "the error does not name judge.route"; }
echo "PASS"
