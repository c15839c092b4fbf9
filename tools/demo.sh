#!/usr/bin/env bash
# tools/demo.sh — `make demo`: the whole pipeline on the bundled task, end to end.
#
#   1. generate the task (a miniature helpful-and-harmless assistant world, rlhf-task)
#   2. SFT the tiny GPT-2 on mixed-quality demonstrations (trains the BPE tokenizer too)
#   3. train the reward model on simulated-annotator comparisons (Bradley-Terry)
#   4. DPO from the SFT model on the same comparisons
#   5. PPO and GRPO with actors + reward server + learner under mpirun (when built)
#   6. evaluate every policy against SFT with the gold judge (rlhf-eval) and plot
#
# Everything lands in $RUN (default runs/demo). Environment: RUN, NP (learner ranks for
# the offline stages, default 2), SEED (training seed of every stage, default the configs'
# 1234), DEMO_FAST=1 (a much shorter smoke version). tools/seeds.sh repeats it over seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
RUN=${RUN:-runs/demo}
NP=${NP:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OPENBLAS_NUM_THREADS=1
MPIRUN="mpirun --oversubscribe --bind-to none -np"
T0=$SECONDS
stamp() { printf '\n=== [%4ds] %s\n' $((SECONDS - T0)) "$*"; }

if [ "${DEMO_FAST:-0}" = 1 ]; then
  SFT_STEPS=40; RM_STEPS=30; DPO_STEPS=20; PPO_UPDATES=4; GRPO_UPDATES=4; K=1; SIZES="--sizes sft=2000,prefs=1000,prefs_eval=200,prompts=200,prompts_eval=40,redteam=20"
else
  SFT_STEPS=${SFT_STEPS:-1200}; RM_STEPS=${RM_STEPS:-1500}; DPO_STEPS=${DPO_STEPS:-600}; PPO_UPDATES=${PPO_UPDATES:-180}; GRPO_UPDATES=${GRPO_UPDATES:-90}; K=${K:-2}; SIZES=""
fi
RL_LR=${RL_LR:-1e-4}     # GRPO's learning rate
PPO_LR=${PPO_LR:-5e-5}   # PPO's (at 1e-4 one seed of three collapsed to terse answers; docs/task.md)
SEEDARG=${SEED:+run.seed=$SEED}   # training seed of every stage (the task data stays seed 1234)
mkdir -p "$RUN"
D="$RUN/data"
# every stage starts fresh: a learner appends to its run's metrics.jsonl (for resume), so
# an earlier demo's records and checkpoints left in $RUN would mix into the plots
rm -rf "$RUN"/{sft,rm,dpo,ppo,grpo,plots}

stamp "1/6 generating the bundled task into $D"
"$B/rlhf-task" gen --out "$D" --seed 1234 $SIZES

stamp "2/6 SFT ($SFT_STEPS steps, $NP learner ranks)"
$MPIRUN "$NP" "$B/learner" sft configs/sft.ini run.out_dir="$RUN/sft" tokenizer.path= \
  tokenizer.train_files="$D/corpus.txt" data.train="$D/sft.jsonl" data.eval= \
  optim.steps="$SFT_STEPS" run.log_every=50 run.ckpt_every=0 $SEEDARG run.eval_every=0

stamp "3/6 reward model ($RM_STEPS steps)"
$MPIRUN "$NP" "$B/learner" rm configs/rm.ini run.out_dir="$RUN/rm" model.init="$RUN/sft" \
  data.train="$D/prefs_train.jsonl" data.eval="$D/prefs_eval.jsonl" optim.steps="$RM_STEPS" \
  run.log_every=50 run.eval_every=100 run.ckpt_every=0 $SEEDARG
# the ceiling: the accuracy of the gold judge itself on the held-out labels (a reward
# model that ranks exactly like it gets this), and its expectation over the label noise
printf 'reward model noise ceiling on the held-out pairs (gold judge vs the noisy labels): %s (expected over the noise: %s)\n' \
  "$(sed -nE 's/.*"empirical_agreement": ?([0-9.]+).*/\1/p' "$D/ceiling.json" | head -1)" \
  "$(sed -nE 's/.*"expected_agreement": ?([0-9.]+).*/\1/p' "$D/ceiling.json" | head -1)"

stamp "4/6 DPO ($DPO_STEPS steps)"
$MPIRUN "$NP" "$B/learner" dpo configs/dpo.ini run.out_dir="$RUN/dpo" model.init="$RUN/sft" \
  data.train="$D/prefs_train.jsonl" data.eval="$D/prefs_eval.jsonl" optim.steps="$DPO_STEPS" \
  run.log_every=50 run.eval_every=100 run.ckpt_every=0 $SEEDARG

MODELS=(--model "dpo=$RUN/dpo")
if [ -x tools/rlhf-run ] && "$B/learner" --help 2>&1 | grep -q '^  ppo'; then
  stamp "5/6 PPO ($PPO_UPDATES updates: 1 learner + 1 reward server + 2 actors)"
  tools/rlhf-run configs/ppo.ini -s ppo -l 1 -r 1 -a 2 --oversubscribe run.out_dir="$RUN/ppo" model.init="$RUN/sft" \
    ppo.reward_ckpt="$RUN/rm" ppo.ref_ckpt="$RUN/sft" data.train="$D/prompts_train.jsonl" \
    data.eval= ppo.updates="$PPO_UPDATES" optim.lr="$PPO_LR" optim.min_lr="$PPO_LR" ppo.kl_coef=0.3 ppo.kl_target=3 judge.monitor_gold=true run.ckpt_every=0 $SEEDARG run.log_every=5
  MODELS+=(--model "ppo=$RUN/ppo")
  if "$B/learner" --help 2>&1 | grep -q '^  grpo'; then
    stamp "5b/6 GRPO ($GRPO_UPDATES updates)"
    tools/rlhf-run configs/grpo.ini -s grpo -l 1 -r 1 -a 2 --oversubscribe run.out_dir="$RUN/grpo" model.init="$RUN/sft" \
      ppo.reward_ckpt="$RUN/rm" ppo.ref_ckpt="$RUN/sft" data.train="$D/prompts_train.jsonl" \
      data.eval= ppo.updates="$GRPO_UPDATES" optim.lr="$RL_LR" optim.min_lr="$RL_LR" grpo.kl_coef=0.3 run.ckpt_every=0 $SEEDARG run.log_every=5
    MODELS+=(--model "grpo=$RUN/grpo")
  fi
fi

stamp "6/6 evaluation against SFT on held-out prompts (gold judge, $K samples per prompt)"
"$B/rlhf-eval" --prompts "$D/prompts_eval.jsonl" --baseline "sft=$RUN/sft" "${MODELS[@]}" \
  --rm "$RUN/rm" --k "$K" --task-seed 1234 --oracle ideal --out "$RUN/eval.jsonl" \
  --samples "$RUN/samples.jsonl"
"$B/rlhf-eval" --prompts "$D/prompts_redteam.jsonl" --baseline "sft=$RUN/sft" "${MODELS[@]}" \
  --k "$K" --task-seed 1234 --out "$RUN/eval_redteam.jsonl" | sed -n '/^model/,$p' | grep -E "^model|all" || true

if command -v gnuplot >/dev/null; then
  bash tools/plots.sh "$RUN" || echo "demo: plotting failed (the numbers above stand)"
fi
stamp "done: checkpoints, metrics (metrics.jsonl), eval.jsonl, samples.jsonl and plots in $RUN"
