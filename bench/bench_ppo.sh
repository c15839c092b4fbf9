#!/usr/bin/env bash
# bench/bench_ppo.sh — the distributed PPO job as a whole: actor scaling, the time split per
# role, and the learner's idle fraction in synchronous vs asynchronous mode.
#
#   BUILD=build bash bench/bench_ppo.sh [actor counts...]      (default: 1 2 4)
#
# Setup (once, in a temp dir): the bundled task's generator (small sizes), a 512-token BPE,
# and a "tiny"-preset policy after 20 SFT steps (throughput does not depend on its
# quality). Each run is a real MPMD launch — 1 learner, 1 reward server (rule judge), N
# actors — of ppo.updates = 7 updates of 64 responses (8 work items of 8) with up to 48 new
# tokens, one thread per rank (run.threads=1). Update 1 is a warm-up; per update the
# script reads metrics.jsonl and reports the median over updates 2..7 of
#   rollouts/s (collect) = responses / t_collect: the generation + scoring phase, where
#                          actors work in parallel (the number that scales with actors);
#   rollouts/s (update)  = responses / t_update: the whole update, training included;
# and, summed over updates 2..7, the time split: actor generate / score wait, reward
# server busy, learner train / weight sync / idle (waiting for rollouts).
# Then the same with N = 2 actors in asynchronous mode (ppo.max_staleness = 1): the learner
# idle fraction = (t_learner_idle + t_sync) / t_update against the synchronous run's; and
# N = 2 synchronous with the default thread count (run.threads = 0: the learner, whose
# phase the others sleep through, gets every CPU) against one thread per rank. Last, the
# rollout features as a whole, before/after, for PPO and GRPO (see the end of the script).
# Ranks outnumber cores here (2 cores: learner + server + N actors), so scaling beyond
# N = 1 cannot show on this machine; run it where cores >= N + 2.
# Output: a table and RESULT lines (bench/run.sh collects them). Not part of `make test`.
set -u
cd "$(dirname "$0")/.." || exit 1
B=${BUILD:-build}
COUNTS=${*:-1 2 4}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1
T=$(mktemp -d /tmp/rlhf-bench-ppo.XXXXXX)
trap 'rm -rf "$T"' EXIT
die() { echo "bench_ppo: $*" >&2; exit 1; }

"$B/rlhf-task" gen --out "$T/data" --seed 3 --sizes sft=400,prefs=10,prefs_eval=10,prompts=256,prompts_eval=10,redteam=5 \
  >/dev/null 2>&1 || die "task generation failed"
"$B/rlhf-tokenize" train --vocab-size 512 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1 || die "tokenizer failed"
mpirun -np 1 "$B/learner" sft configs/sft.ini data.train="$T/data/sft.jsonl" data.eval= \
  tokenizer.path="$T/tok" model.preset=tiny optim.batch_size=8 optim.steps=20 optim.warmup_steps=2 \
  run.ckpt_every=0 run.eval_every=0 run.log_every=20 run.out_dir="$T/sft" >"$T/sft.log" 2>&1 ||
  { cat "$T/sft.log"; die "sft failed"; }

PPO="configs/ppo.ini data.train=$T/data/prompts_train.jsonl data.eval= model.init=$T/sft
  judge.kind=rule judge.rule=contains:help ppo.value_init=sft ppo.reward_ckpt= ppo.ref_ckpt=
  ppo.rollout_batch=64 ppo.actor_batch=8 ppo.minibatch=16 ppo.epochs=1 ppo.updates=7
  gen.max_new_tokens=48 data.max_prompt_len=48 run.threads=1 run.ckpt_every=0 run.log_every=100"

# job NAME ACTORS [overrides...]: one launch; its metrics in $T/NAME/metrics.jsonl
job() {
  local name=$1 na=$2; shift 2
  timeout 900 mpirun -np 1 "$B/learner" "${STAGE:-ppo}" $PPO run.out_dir="$T/$name" "$@" \
    : -np 1 "$B/reward_server" $PPO run.out_dir="$T/$name" "$@" \
    : -np "$na" "$B/actor" $PPO run.out_dir="$T/$name" "$@" >"$T/$name.log" 2>&1 ||
    { tail -20 "$T/$name.log"; die "job $name failed"; }
}
# per-update values of a metric, updates 2..7
col() { tail -n +2 "$T/$1/metrics.jsonl" | sed -E "s/.*\"$2\": ([-0-9.e+]+).*/\1/"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
sum() { awk '{ s += $1 } END { printf "%.3f", s }'; }
rate() { paste <(col "$1" resp_len) <(col "$1" "$2") | awk '{ print 64 / $2 }' | median; }

printf '%-22s %8s %14s %14s %9s %9s %9s %9s %9s %9s\n' run actors "rollouts/s col" "rollouts/s upd" \
  generate scorewait server train sync idle
report() { # name actors label
  local n=$1 na=$2 label=$3
  local rc ru
  rc=$(rate "$n" t_collect); ru=$(rate "$n" t_update)
  # asynchronous: rollouts are mostly in before the learner asks (t_collect ~ 0), so only
  # the whole-update rate means something
  case $n in async*) rc=nan ;; esac
  local g s sv tr sy id up
  g=$(col "$n" t_actor_generate | sum); s=$(col "$n" t_actor_score_wait | sum)
  sv=$(col "$n" t_server_busy | sum); tr=$(col "$n" t_train | sum)
  sy=$(col "$n" t_sync | sum); id=$(col "$n" t_learner_idle | sum); up=$(col "$n" t_update | sum)
  printf '%-22s %8d %14.1f %14.1f %8.2fs %8.2fs %8.2fs %8.2fs %8.2fs %8.2fs\n' "$label" "$na" "$rc" "$ru" \
    "$g" "$s" "$sv" "$tr" "$sy" "$id"
  [ "$rc" = nan ] || printf 'RESULT\tppo.%s.rollouts_per_s_collect\t%s\trollouts/s\n' "$n" "$rc"
  printf 'RESULT\tppo.%s.rollouts_per_s_update\t%s\trollouts/s\n' "$n" "$ru"
  local k v
  for k in g:t_actor_generate s:t_actor_score_wait sv:t_server_busy tr:t_train sy:t_sync id:t_learner_idle up:t_update; do
    v=${k%%:*}; printf 'RESULT\tppo.%s.%s\t%s\ts\n' "$n" "${k#*:}" "${!v}"
  done
  awk -v i="$id" -v s="$sy" -v u="$up" 'BEGIN { printf "RESULT\tppo.'"$n"'.learner_idle_frac\t%.4f\tfraction\n", (i + s) / u }'
}

first=
for na in $COUNTS; do
  job "sync_a$na" "$na" ppo.max_staleness=0
  report "sync_a$na" "$na" "sync, $na actor(s)"
  [ -z "$first" ] && first=$na
done
job async_a2 2 ppo.max_staleness=1
report async_a2 2 "async (staleness 1)"
[ -f "$T/sync_a2/metrics.jsonl" ] || { job sync_a2 2 ppo.max_staleness=0; report sync_a2 2 "sync, 2 actor(s)"; }
# the default thread count (run.threads = 0): in a synchronous job each phase's ranks
# divide the CPUs among themselves, so the learner trains on all of them here
job sync_auto_a2 2 ppo.max_staleness=0 run.threads=0
report sync_auto_a2 2 "sync, 2, auto threads"
grep -h "threads per rank" "$T/sync_auto_a2.log" | sed 's/^/  /'
base=$(rate "sync_a$first" t_collect)
for na in $COUNTS; do
  r=$(rate "sync_a$na" t_collect)
  awk -v r="$r" -v b="$base" -v n="$na" -v f="$first" 'BEGIN {
    printf "scaling %d vs %d actor(s): %.2fx the collect rate (ideal %.0fx)\n", n, f, r / b, n / f
    printf "RESULT\tppo.scaling_a%d\t%.4f\tratio\n", n, r / b }'
done
awk -v a="$(col async_a2 t_learner_idle | sum)" -v as="$(col async_a2 t_sync | sum)" -v au="$(col async_a2 t_update | sum)" \
    -v s="$(col sync_a2 t_learner_idle | sum)" -v ss="$(col sync_a2 t_sync | sum)" -v su="$(col sync_a2 t_update | sum)" 'BEGIN {
  printf "learner idle (waiting for rollouts + weight sync) / update time, 2 actors: sync %.3f, async %.3f\n", (s + ss) / su, (a + as) / au }'
awk -v a="$(rate sync_auto_a2 t_update)" -v o="$(rate sync_a2 t_update)" 'BEGIN {
  printf "sync, 2 actors: auto threads vs one thread per rank: %.2fx the whole-update rate\n", a / o
  printf "RESULT\tppo.auto_threads_speedup\t%.4f\tratio\n", a / o }'
# The rollout features (gen.batch_size in-flight slots, the shared prompt prefill, bf16
# decode weights; the reward server's reference pass with each prompt once,
# ppo.shared_prompt = on) against the schedule without them (RLHF_GEN_BASELINE=1: static
# batches, one prefill per sequence; f32 weights; ppo.shared_prompt = off): 1 actor, work
# items of 16 sequences decoded 8 at a time, PPO and GRPO (group size 8: two prompts of 8
# samples per item).
FEAT="ppo.max_staleness=0 ppo.actor_batch=16 gen.batch_size=8"
for st in ppo grpo; do
  RLHF_GEN_BASELINE=1 STAGE=$st job "${st}_before" 1 $FEAT gen.weights=f32 grpo.group_size=8 ppo.shared_prompt=off
  report "${st}_before" 1 "$st, before (static, f32)"
  STAGE=$st job "${st}_after" 1 $FEAT gen.weights=bf16 grpo.group_size=8 ppo.shared_prompt=on
  report "${st}_after" 1 "$st, after (in-flight, bf16)"
  awk -v a="$(rate "${st}_after" t_collect)" -v b="$(rate "${st}_before" t_collect)" \
      -v ga="$(col "${st}_after" t_actor_generate | sum)" -v gb="$(col "${st}_before" t_actor_generate | sum)" \
      -v va="$(col "${st}_after" t_server_busy | sum)" -v vb="$(col "${st}_before" t_server_busy | sum)" -v s="$st" 'BEGIN {
    printf "%s, 1 actor: in-flight + shared prefill + bf16 + shared-prompt scoring vs static + f32 + forward scoring: %.2fx the collect rate; actor generation %.2f s -> %.2f s, reward server busy %.2f s -> %.2f s (updates 2..7)\n", s, a / b, gb, ga, vb, va
    printf "RESULT\tppo.features_%s_speedup\t%.4f\tratio\n", s, a / b }'
done
echo "cores: $(nproc), ranks per job: learner 1 + reward server 1 + actors; run.threads=1 except the auto row; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
