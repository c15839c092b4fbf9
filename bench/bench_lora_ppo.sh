#!/usr/bin/env bash
# bench/bench_lora_ppo.sh — LoRA against full fine-tuning in a real online job at the `smol`
# shape (SmolLM2-135M's, random weights): peak memory of every rank, weight-sync bytes per
# update and the time of an update, for PPO (with its critic) and GRPO (no critic).
#
#   BUILD=build [JOBS="ppo_full ppo_lora ..."] bash bench/bench_lora_ppo.sh [updates] [rank]
#                                                                   (defaults: all jobs, 3, 16)
#
# Setup (once, in a temp dir): the bundled task's generator, a 320-token BPE (its ids fit
# the smol vocabulary of 49,152, set with model.vocab_size), a smol policy checkpoint from
# `learner sft` with one step and a smol reward model from `learner rm` with one step (the
# weights are random: memory and time do not depend on their quality; a text judge cannot
# score them, since random ids past the BPE's 320 do not decode). Each job is one MPMD
# launch — 1 learner, 1 reward server (the reward model, judge.kind = rm, and, unless the
# learner computes it, the frozen reference policy), 1 actor — of `updates` synchronous updates of 8 responses (one work
# item), prompts up to 24 tokens and 16 new tokens, ppo.epochs 1, one thread per rank,
# ppo.weight_sync = params. Jobs: ppo_full (the critic from the reward model, as
# InstructGPT), ppo_lora all-linear, ppo_lora_default (PEFT's q_proj,v_proj; ppo_lora_qv
# is the same job), ppo_lora_sft (default targets, ppo.value_init = sft: the LoRA critic
# on the policy's frozen trunk), grpo_full, grpo_lora all-linear (group size 4, no
# critic); LoRA at rank `rank`, alpha 2 x rank. With LoRA the critic is a LoRA critic
# (frozen trunk: a copy of the reward model's with value_init = reward, the policy's own
# base buffer with sft; adapters + a trainable value head).
# Memory: every 0.5 s the script reads VmHWM (the kernel's peak resident set) from
# /proc/PID/status of each rank of the launch and keeps the largest per role; VmHWM only
# grows, so the last read before a rank exits is its peak (what a rank allocates in its
# last 0.5 s is missed: the shutdown frees, it does not allocate). The learner's peak
# includes its final checkpoint write; "(updates)" is the learner's largest VmRSS sampled
# while updates were still running, before that write.
# Sync: bytes of every weight update after the first image: the parameter buffer (4 x
# parameters) in full fine-tuning, the adapter buffer with LoRA (the learner's "LoRA
# weight sync" line, which also gives the first image); "of full" = against the full
# parameter buffer. Packs: how many times the actor
# packed its decode copy (RLHF_ACTOR_VERBOSE). Time: median over updates 2.. of t_update
# (the whole update: generation, scoring, training, sync), of t_train and of t_ref (the
# learner's reference pass, 0 where the reward server computes the reference), metrics.jsonl.
# The reward server loads the reference policy unless the learner computes it (LoRA with
# ppo.ref_ckpt empty: online_ref_on_learner); REF_ON=reward_server (environment) forces
# the server path for a before/after comparison.
# Output: a table and RESULT lines (bench/run.sh collects them). Not part of `make test`.
set -u
cd "$(dirname "$0")/.." || exit 1
B=${BUILD:-build}
UPDATES=${1:-3}
RANK=${2:-16}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1
T=$(mktemp -d /tmp/rlhf-bench-lora-ppo.XXXXXX)
trap 'rm -rf "$T"' EXIT
die() { echo "bench_lora_ppo: $*" >&2; exit 1; }

"$B/rlhf-task" gen --out "$T/data" --seed 3 --sizes sft=64,prefs=10,prefs_eval=10,prompts=64,prompts_eval=10,redteam=5 \
  >/dev/null 2>&1 || die "task generation failed"
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1 || die "tokenizer failed"
SHAPE="model.preset=smol model.vocab_size=49152 model.max_seq_len=64 data.max_prompt_len=24 data.max_response_len=16
  gen.max_new_tokens=16"
mpirun -np 1 "$B/learner" sft configs/sft.ini data.train="$T/data/sft.jsonl" data.eval= \
  tokenizer.path="$T/tok" $SHAPE optim.batch_size=1 optim.steps=1 optim.warmup_steps=0 \
  run.ckpt_every=0 run.eval_every=0 run.log_every=1 run.out_dir="$T/sft" >"$T/sft.log" 2>&1 ||
  { cat "$T/sft.log"; die "smol sft checkpoint failed"; }
mpirun -np 1 "$B/learner" rm configs/rm.ini data.train="$T/data/prefs_train.jsonl" data.eval= \
  model.init="$T/sft" $SHAPE optim.batch_size=1 optim.steps=1 optim.warmup_steps=0 \
  run.ckpt_every=0 run.eval_every=0 run.out_dir="$T/rm" >"$T/rm.log" 2>&1 ||
  { cat "$T/rm.log"; die "smol reward model checkpoint failed"; }
NPARAM=$(sed -nE 's/.*model ([0-9]+) parameters.*/\1/p' "$T/sft.log" | head -1)

PPO="configs/ppo.ini data.train=$T/data/prompts_train.jsonl data.eval= model.init=$T/sft $SHAPE
  judge.kind=rm ppo.reward_ckpt=$T/rm ppo.value_init=reward ppo.ref_ckpt=
  ppo.rollout_batch=8 ppo.actor_batch=8 ppo.minibatch=8 ppo.epochs=1 ppo.updates=$UPDATES
  ppo.max_staleness=0 ppo.weight_sync=params grpo.group_size=4 run.threads=1 run.ckpt_every=0
  run.log_every=1 optim.lr=1e-5 optim.min_lr=1e-5"
LORA="lora.rank=$RANK lora.alpha=$((2 * RANK)) ppo.ref_on=${REF_ON:-auto}"

# the pids of every process below $1
descendants() {
  local kids k
  kids=$(ps -o pid= --ppid "$1" 2>/dev/null)
  for k in $kids; do echo "$k"; descendants "$k"; done
}
# job NAME STAGE [overrides...]: one launch, sampled; peaks in $T/NAME.rss (role kB)
job() {
  local name=$1 stage=$2; shift 2
  RLHF_ACTOR_VERBOSE=1 mpirun -np 1 "$B/learner" "$stage" $PPO run.out_dir="$T/$name" "$@" \
    : -np 1 "$B/reward_server" $PPO run.out_dir="$T/$name" "$@" \
    : -np 1 "$B/actor" $PPO run.out_dir="$T/$name" "$@" >"$T/$name.log" 2>&1 &
  local mp=$! p role kb rs done
  declare -A peak=([learner]=0 [reward_server]=0 [actor]=0) upd=([learner]=0)
  while kill -0 "$mp" 2>/dev/null; do
    # updates logged so far: once all are, the learner writes its final checkpoint
    done=$(grep -c '"stage"' "$T/$name/metrics.jsonl" 2>/dev/null)
    for p in $(descendants "$mp"); do
      role=$(cat "/proc/$p/comm" 2>/dev/null) || continue
      [ -n "${peak[$role]+x}" ] || continue
      read -r kb rs < <(awk '/^VmHWM:/ { h = $2 } /^VmRSS:/ { r = $2 } END { print h, r }' \
        "/proc/$p/status" 2>/dev/null) || continue
      [ -n "$kb" ] && [ "$kb" -gt "${peak[$role]}" ] && peak[$role]=$kb
      [ "$role" = learner ] && [ "${done:-0}" -lt "$UPDATES" ] && [ -n "$rs" ] &&
        [ "$rs" -gt "${upd[learner]}" ] && upd[learner]=$rs
    done
    sleep 0.5
  done
  wait "$mp" || { tail -30 "$T/$name.log"; die "job $name failed"; }
  for role in learner reward_server actor; do echo "$role ${peak[$role]}"; done >"$T/$name.rss"
  echo "learner_updates ${upd[learner]}" >>"$T/$name.rss"
}
rss() { awk -v r="$2" '$1 == r { printf "%.0f", $2 / 1024 }' "$T/$1.rss"; }
col() { tail -n +2 "$T/$1/metrics.jsonl" | sed -E "s/.*\"$2\": ([-0-9.e+]+).*/\1/"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# bytes per weight update after the first image; the first image (LoRA runs only)
sync() { sed -nE 's/.*LoRA weight sync: ([0-9]+) bytes per update.*/\1/p' "$T/$1.log" | grep . || echo $((4 * NPARAM)); }
image() { sed -nE 's/.*the first image: ([0-9]+) bytes.*/\1/p' "$T/$1.log"; }
packs() { sed -nE 's/.* ([0-9]+) decode copy packs.*/\1/p' "$T/$1.log"; }

# JOBS (environment): a subset of the jobs below, each with its stage's full job
JOBS=${JOBS:-ppo_full ppo_lora_default ppo_lora_sft grpo_full grpo_lora}
for n in $JOBS; do
  case $n in
    ppo_full) job ppo_full ppo ;;
    ppo_lora) job ppo_lora ppo $LORA lora.targets=all-linear ;;
    ppo_lora_qv | ppo_lora_default) job "$n" ppo $LORA lora.targets=default ;;
    ppo_lora_sft) job ppo_lora_sft ppo $LORA lora.targets=default ppo.value_init=sft ;;
    grpo_full) job grpo_full grpo ;;
    grpo_lora) job grpo_lora grpo $LORA lora.targets=all-linear ;;
    *) die "unknown job '$n' in JOBS" ;;
  esac
done

echo "smol: $NPARAM parameters; $UPDATES updates; peak RSS (VmHWM) per rank in MB"
printf '%-16s %10s %10s %10s %9s %10s %14s %8s %6s %9s %9s %7s\n' job learner_MB "(updates)" server_MB \
  actor_MB "L+S/full" "sync B/update" "of full" packs update_s train_s ref_s
for n in $JOBS; do
  st=${n%%_*}
  fl=$(rss ${st}_full learner); fs=$(rss ${st}_full reward_server)
  l=$(rss $n learner); s=$(rss $n reward_server); a=$(rss $n actor)
  share=$(awk -v a="$l" -v b="$s" -v c="$fl" -v d="$fs" 'BEGIN { printf "%.1f%%", 100 * (a + b) / (c + d) }')
  w=$(sync $n)
  pct=$(awk -v w="$w" -v f="$NPARAM" 'BEGIN { printf "%.2f%%", 100 * w / (4 * f) }')
  u=$(col $n t_update | median); tr=$(col $n t_train | median); rf=$(col $n t_ref | median)
  printf '%-16s %10s %10s %10s %9s %10s %14s %8s %6s %9.2f %9.2f %7.2f\n' "$n" "$l" "$(rss $n learner_updates)" \
    "$s" "$a" "$share" "$w" "$pct" "$(packs $n)" "$u" "$tr" "$rf"
  for k in learner learner_updates reward_server actor; do
    printf 'RESULT\tlora_ppo.%s.%s_peak_rss_mb\t%s\tMB\n' "$n" "$k" "$(rss $n $k)"
  done
  printf 'RESULT\tlora_ppo.%s.learner_server_share\t%s\t%%\n' "$n" "${share%\%}"
  printf 'RESULT\tlora_ppo.%s.sync_bytes_per_update\t%s\tbytes\n' "$n" "$w"
  printf 'RESULT\tlora_ppo.%s.update_s\t%s\ts\n' "$n" "$u"
  printf 'RESULT\tlora_ppo.%s.train_s\t%s\ts\n' "$n" "$tr"
  printf 'RESULT\tlora_ppo.%s.ref_s\t%s\ts\n' "$n" "$rf"
done
for n in $JOBS; do
  case $n in *lora*) echo "$n: $(grep -h 'LoRA weight sync' "$T/$n.log")" ;; esac
done
