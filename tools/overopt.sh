#!/usr/bin/env bash
# tools/overopt.sh — `make overopt`: the reward over-optimisation experiment (Gao et al.
# 2022, "Scaling Laws for Reward Model Overoptimization"). PPO against the learned reward
# model twice from the same SFT policy: with beta = 0 (no KL penalty) and with the default
# adaptive beta; every rollout is also scored by the bundled task's gold judge
# (judge.monitor_gold: logged, never a reward). Writes, per run, the proxy (RM) score and
# the gold score against sqrt(KL to the SFT reference), a plot of both curves
# ($RUN/plots/overopt.png) and a summary:
#   - beta = 0: does the proxy keep rising while gold peaks and falls?
#   - default beta: does gold hold up in the last third (no fall beyond noise)?
# Needs the demo's SFT model, reward model and data ($RUN/sft, $RUN/rm, $RUN/data); runs
# the demo first when they are missing. Environment: RUN (default runs/demo), UPDATES
# (default 80), RL_LR (default 5e-5), BETA and KL_TARGET (default 0.3 and 3: the demo's
# adaptive controller, tools/demo.sh).
#
# The third run is the reward-model ensemble (Coste et al. 2023, "Reward model ensembles
# help mitigate overoptimization"): beta = 0 again, against ENSEMBLE (default 3) reward
# models combined as mean - lambda * std (ENSEMBLE_RULE = mean_std|min, ENSEMBLE_LAMBDA
# default 1): the demo's $RUN/rm and ENSEMBLE - 1 more trained the same way with training
# seeds 2, 3, ... ($RUN/rm_seedS, RM_STEPS default 1500 as in the demo; trained once, kept
# for the next run). The question: is the ensemble's gold peak at least the single model's,
# and does it come later in sqrt(KL)? ENSEMBLE=1 skips it. SKIP_RUNS=1 keeps the runs
# already made (their .dat files) and redoes the summary and the plot.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
RUN=${RUN:-runs/demo}
UPDATES=${UPDATES:-80}
RL_LR=${RL_LR:-5e-5}
BETA=${BETA:-0.3}
KL_TARGET=${KL_TARGET:-3}
ENSEMBLE=${ENSEMBLE:-3}
ENSEMBLE_RULE=${ENSEMBLE_RULE:-mean_std}
ENSEMBLE_LAMBDA=${ENSEMBLE_LAMBDA:-1}
RM_STEPS=${RM_STEPS:-1500}
export OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=1
if [ ! -f "$RUN/sft/latest" ] || [ ! -f "$RUN/rm/latest" ] || [ ! -f "$RUN/data/prompts_train.jsonl" ]; then
  echo "overopt: no SFT/RM in $RUN: running the demo first"
  RUN="$RUN" bash tools/demo.sh
fi
OUT="$RUN/overopt"; mkdir -p "$OUT" "$RUN/plots"
T0=$SECONDS
# ppo_run NAME BETA [key=value ...]: one PPO run and its NAME.dat (update, sqrt KL, proxy, gold)
ppo_run() {
  local name=$1 beta=$2; shift 2
  if [ "${SKIP_RUNS:-0}" = 1 ] && [ -s "$OUT/$name.dat" ]; then echo "=== PPO $name: kept ($OUT/$name.dat)"; return; fi
  echo "=== [$((SECONDS - T0))s] PPO $name ($UPDATES updates, ppo.kl_coef=$beta${*:+, $*})"
  rm -rf "${OUT:?}/$name"
  tools/rlhf-run configs/ppo.ini -s ppo -l 1 -r 1 -a 2 --oversubscribe run.out_dir="$OUT/$name" model.init="$RUN/sft" \
    ppo.reward_ckpt="$RUN/rm" ppo.ref_ckpt="$RUN/sft" data.train="$RUN/data/prompts_train.jsonl" \
    data.eval= ppo.updates="$UPDATES" optim.lr="$RL_LR" optim.min_lr="$RL_LR" ppo.kl_coef="$beta" \
    ppo.kl_target="$KL_TARGET" judge.monitor_gold=true run.ckpt_every=0 run.log_every=10 "$@"
  grep '"gold_score"' "$OUT/$name/metrics.jsonl" | sed -nE \
    's/.*"step": ([0-9]+).*"score": (-?[0-9.e+-]+),.*"kl": (-?[0-9.e+-]+),.*"gold_score": (-?[0-9.e+-]+).*/\1 \3 \2 \4/p' |
    awk '{ k = $2 > 0 ? $2 : 0; printf "%d %.4f %.4f %.4f\n", $1, sqrt(k), $3, $4 }' > "$OUT/$name.dat"
}
ppo_run beta0 0
ppo_run "beta$BETA" "$BETA"
if [ "$ENSEMBLE" -gt 1 ]; then
  # the ensemble's other members: the demo's RM line with another training seed
  CKPTS="$RUN/rm"
  for ((k = 2; k <= ENSEMBLE; k++)); do
    if [ ! -f "$RUN/rm_seed$k/latest" ]; then
      echo "=== [$((SECONDS - T0))s] reward model $k of $ENSEMBLE (run.seed=$k, $RM_STEPS steps)"
      rm -rf "${RUN:?}/rm_seed$k"
      mpirun --oversubscribe --bind-to none -np 2 "$B/learner" rm configs/rm.ini run.out_dir="$RUN/rm_seed$k" \
        model.init="$RUN/sft" data.train="$RUN/data/prefs_train.jsonl" data.eval="$RUN/data/prefs_eval.jsonl" \
        optim.steps="$RM_STEPS" run.log_every=100 run.eval_every=500 run.ckpt_every=0 run.seed="$k"
    fi
    CKPTS="$CKPTS,$RUN/rm_seed$k"
  done
  ppo_run ensemble0 0 judge.rm_ckpts="$CKPTS" judge.ensemble="$ENSEMBLE_RULE" judge.ensemble_lambda="$ENSEMBLE_LAMBDA"
fi

# a 5-update moving average smooths the per-update noise (64 responses per update)
summary() { # name file
  awk -v name="$1" '
    { u[NR] = $1; s[NR] = $2; p[NR] = $3; g[NR] = $4 }
    END {
      n = NR; w = 5
      for (i = 1; i <= n; i++) { a = 0; b = 0; c = 0; for (j = i - w + 1; j <= i; j++) { jj = j < 1 ? 1 : j; a += p[jj]; b += g[jj]; c += s[jj] }
                                  P[i] = a / w; G[i] = b / w; S[i] = c / w }
      best = 1; for (i = 1; i <= n; i++) if (G[i] > G[best]) best = i
      t = int(2 * n / 3); if (t < 1) t = 1
      printf "%-10s proxy %.3f -> %.3f | gold %.3f -> peak %.3f (update %d, sqrt KL %.2f) -> %.3f | sqrt KL at end %.2f | gold at 2/3 %.3f, at end %.3f\n",
             name, P[w <= n ? w : n], P[n], G[w <= n ? w : n], G[best], u[best], S[best], G[n], S[n], G[t], G[n]
    }' "$2"
}
echo
echo "over-optimisation summary (5-update moving averages):"
summary beta0 "$OUT/beta0.dat" | tee "$OUT/summary.txt"
summary "beta$BETA" "$OUT/beta$BETA.dat" | tee -a "$OUT/summary.txt"
if [ "$ENSEMBLE" -gt 1 ]; then
  summary "ens$ENSEMBLE" "$OUT/ensemble0.dat" | tee -a "$OUT/summary.txt"
  # Coste et al.'s claim, checked on the smoothed curves: the ensemble's gold peak is at
  # least the single model's, and it is reached at a larger sqrt(KL)
  awk -v k="$ENSEMBLE" '
    /^beta0 / { match($0, /peak [0-9.]+/); p0 = substr($0, RSTART + 5, RLENGTH - 5) + 0
                match($0, /sqrt KL [0-9.]+\)/); s0 = substr($0, RSTART + 8, RLENGTH - 9) + 0 }
    /^ens/    { match($0, /peak [0-9.]+/); p1 = substr($0, RSTART + 5, RLENGTH - 5) + 0
                match($0, /sqrt KL [0-9.]+\)/); s1 = substr($0, RSTART + 8, RLENGTH - 9) + 0 }
    END { printf "ensemble of %d vs one reward model, beta = 0: gold peak %.3f vs %.3f (%s), at sqrt KL %.2f vs %.2f (%s)\n",
                 k, p1, p0, (p1 >= p0 ? "not lower" : "lower"), s1, s0, (s1 > s0 ? "later" : "not later") }' "$OUT/summary.txt" | tee -a "$OUT/summary.txt"
fi
if command -v gnuplot >/dev/null; then
  ENS_PLOT=""; ENS_NAME="mean - $ENSEMBLE_LAMBDA std of $ENSEMBLE RMs"
  [ "$ENSEMBLE_RULE" = min ] && ENS_NAME="min of $ENSEMBLE RMs"
  [ "$ENSEMBLE" -gt 1 ] && ENS_PLOT=", \\
     \"$OUT/ensemble0.dat\" using 2:3 with linespoints pt 9 ps 0.5 title \"proxy ($ENS_NAME), beta = 0\", \\
     \"$OUT/ensemble0.dat\" using 2:4 axes x1y2 with linespoints pt 9 ps 0.5 title \"gold, ensemble of $ENSEMBLE, beta = 0\""
  gnuplot <<GP
set terminal pngcairo size 1000,600 noenhanced
set output "$RUN/plots/overopt.png"
set title "Reward over-optimisation: proxy (RM) and gold score against sqrt(KL) (Gao et al. 2022)"
set xlabel "sqrt(KL to the SFT reference), nats^0.5"; set ylabel "RM score (proxy)"; set y2label "gold score"
set y2tics; set grid; set key below maxrows 3 width -2
plot "$OUT/beta0.dat" using 2:3 with linespoints pt 7 ps 0.5 title "proxy, beta = 0", \
     "$OUT/beta0.dat" using 2:4 axes x1y2 with linespoints pt 7 ps 0.5 title "gold, beta = 0", \
     "$OUT/beta$BETA.dat" using 2:3 with linespoints pt 5 ps 0.5 title "proxy, beta = $BETA", \
     "$OUT/beta$BETA.dat" using 2:4 axes x1y2 with linespoints pt 5 ps 0.5 title "gold, beta = $BETA"$ENS_PLOT
GP
  echo "plot: $RUN/plots/overopt.png"
fi
echo "=== [$((SECONDS - T0))s] done: $OUT"
