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
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
RUN=${RUN:-runs/demo}
UPDATES=${UPDATES:-80}
RL_LR=${RL_LR:-5e-5}
BETA=${BETA:-0.3}
KL_TARGET=${KL_TARGET:-3}
export OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=1
if [ ! -f "$RUN/sft/latest" ] || [ ! -f "$RUN/rm/latest" ] || [ ! -f "$RUN/data/prompts_train.jsonl" ]; then
  echo "overopt: no SFT/RM in $RUN: running the demo first"
  RUN="$RUN" bash tools/demo.sh
fi
OUT="$RUN/overopt"; mkdir -p "$OUT" "$RUN/plots"
T0=$SECONDS
for spec in "beta0:0" "beta$BETA:$BETA"; do
  name=${spec%%:*}; beta=${spec#*:}
  echo "=== [$((SECONDS - T0))s] PPO $name ($UPDATES updates, ppo.kl_coef=$beta)"
  rm -rf "${OUT:?}/$name"
  tools/rlhf-run configs/ppo.ini -s ppo -l 1 -r 1 -a 2 --oversubscribe run.out_dir="$OUT/$name" model.init="$RUN/sft" \
    ppo.reward_ckpt="$RUN/rm" ppo.ref_ckpt="$RUN/sft" data.train="$RUN/data/prompts_train.jsonl" \
    data.eval= ppo.updates="$UPDATES" optim.lr="$RL_LR" optim.min_lr="$RL_LR" ppo.kl_coef="$beta" \
    ppo.kl_target="$KL_TARGET" judge.monitor_gold=true run.ckpt_every=0 run.log_every=10
  # update, sqrt(KL), proxy score, gold score
  grep '"gold_score"' "$OUT/$name/metrics.jsonl" | sed -nE \
    's/.*"step": ([0-9]+).*"score": (-?[0-9.e+-]+),.*"kl": (-?[0-9.e+-]+),.*"gold_score": (-?[0-9.e+-]+).*/\1 \3 \2 \4/p' |
    awk '{ k = $2 > 0 ? $2 : 0; printf "%d %.4f %.4f %.4f\n", $1, sqrt(k), $3, $4 }' > "$OUT/$name.dat"
done

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
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 1000,500 noenhanced
set output "$RUN/plots/overopt.png"
set title "Reward over-optimisation: proxy (RM) and gold score against sqrt(KL) (Gao et al. 2022)"
set xlabel "sqrt(KL to the SFT reference), nats^0.5"; set ylabel "RM score (proxy)"; set y2label "gold score"
set y2tics; set grid
plot "$OUT/beta0.dat" using 2:3 with linespoints pt 7 ps 0.5 title "proxy, beta = 0", \
     "$OUT/beta0.dat" using 2:4 axes x1y2 with linespoints pt 7 ps 0.5 title "gold, beta = 0", \
     "$OUT/beta$BETA.dat" using 2:3 with linespoints pt 5 ps 0.5 title "proxy, beta = $BETA", \
     "$OUT/beta$BETA.dat" using 2:4 axes x1y2 with linespoints pt 5 ps 0.5 title "gold, beta = $BETA"
GP
  echo "plot: $RUN/plots/overopt.png"
fi
echo "=== [$((SECONDS - T0))s] done: $OUT"
