#!/usr/bin/env bash
# tools/plots.sh RUN_DIR — PNG plots of a demo run with gnuplot (no Python):
#   sft_loss.png      SFT training loss per step
#   rm_accuracy.png   reward-model held-out accuracy per step, with the noise ceiling
#   dpo.png           DPO train reward accuracy and margin per step
#   ppo.png           PPO mean RM score, gold score (judge.monitor_gold), KL and beta per
#                     update (when a PPO run exists)
#   winrate.png       gold-judge win rate of every policy against SFT (bars, ± s.e.)
set -euo pipefail
RUN=${1:?usage: plots.sh RUN_DIR}
P="$RUN/plots"; mkdir -p "$P"
# "x y" pairs from JSONL lines holding both keys
pairs() { # file xkey ykey [filter-regex]
  grep -E "${4:-.}" "$1" | grep "\"$3\"" | sed -nE "s/.*\"$2\": ?(-?[0-9.eE+-]+).*/\1/p" > "$P/.x" || true
  grep -E "${4:-.}" "$1" | grep "\"$3\"" | sed -nE "s/.*\"$3\": ?(-?[0-9.eE+-]+).*/\1/p" > "$P/.y" || true
  paste -d' ' "$P/.x" "$P/.y"
}
plot() { # out title xlabel ylabel datafile [more gnuplot]
  gnuplot <<GP
set terminal pngcairo size 800,500 noenhanced
set output "$1"
set title "$2"
set xlabel "$3"
set ylabel "$4"
set grid
plot "$5" using 1:2 with lines lw 2 title "$4"
GP
}
if [ -f "$RUN/sft/metrics.jsonl" ]; then
  pairs "$RUN/sft/metrics.jsonl" step loss > "$P/sft_loss.dat"
  plot "$P/sft_loss.png" "SFT: response-token cross-entropy" step loss "$P/sft_loss.dat"
fi
if [ -f "$RUN/rm/metrics.jsonl" ]; then
  pairs "$RUN/rm/metrics.jsonl" step eval_accuracy > "$P/rm_acc.dat"
  ceil=$(sed -nE 's/.*"empirical_agreement": ?([0-9.]+).*/\1/p' "$RUN/data/ceiling.json" | head -1)
  gnuplot <<GP
set terminal pngcairo size 800,500 noenhanced
set output "$P/rm_accuracy.png"
set title "Reward model: held-out pairwise accuracy"
set xlabel "step"; set ylabel "accuracy"; set grid; set yrange [0.4:1]
plot "$P/rm_acc.dat" using 1:2 with linespoints lw 2 title "held-out accuracy", ${ceil:-0.8} with lines dt 2 title "noise ceiling"
GP
fi
if [ -f "$RUN/dpo/metrics.jsonl" ]; then
  pairs "$RUN/dpo/metrics.jsonl" step accuracy '"loss"' > "$P/dpo_acc.dat"
  pairs "$RUN/dpo/metrics.jsonl" step margin '"loss"' > "$P/dpo_margin.dat"
  gnuplot <<GP
set terminal pngcairo size 800,500 noenhanced
set output "$P/dpo.png"
set title "DPO: implicit-reward accuracy and margin (train)"
set xlabel "step"; set grid; set y2tics
plot "$P/dpo_acc.dat" using 1:2 with lines lw 2 title "accuracy", "$P/dpo_margin.dat" using 1:2 axes x1y2 with lines lw 2 title "margin (right axis)"
GP
fi
if [ -f "$RUN/ppo/metrics.jsonl" ]; then
  pairs "$RUN/ppo/metrics.jsonl" step score > "$P/ppo_score.dat"
  pairs "$RUN/ppo/metrics.jsonl" step kl > "$P/ppo_kl.dat"
  pairs "$RUN/ppo/metrics.jsonl" step beta > "$P/ppo_beta.dat"
  pairs "$RUN/ppo/metrics.jsonl" step gold_score > "$P/ppo_gold.dat"
  gold=""
  [ -s "$P/ppo_gold.dat" ] && gold=", \"$P/ppo_gold.dat\" using 1:2 with lines lw 2 title \"gold score (never the reward)\""
  gnuplot <<GP
set terminal pngcairo size 900,500 noenhanced
set output "$P/ppo.png"
set title "PPO: reward-model score, gold score, KL to the SFT reference, beta"
set xlabel "update"; set grid; set y2tics
plot "$P/ppo_score.dat" using 1:2 with lines lw 2 title "RM score", "$P/ppo_kl.dat" using 1:2 with lines lw 2 title "KL (nats)", "$P/ppo_beta.dat" using 1:2 axes x1y2 with lines lw 2 title "beta (right axis)"$gold
GP
fi
if [ -f "$RUN/eval.jsonl" ]; then
  grep '"category": "all"' "$RUN/eval.jsonl" | sed -nE 's/.*"model": "([^"]+)".*"win_rate": ([0-9.]+), "win_se": ([0-9.]+).*/\1 \2 \3/p' > "$P/win.dat"
  gnuplot <<GP
set terminal pngcairo size 700,500 noenhanced
set output "$P/winrate.png"
set title "Gold-judge win rate against the SFT model (ties count half)"
set style data histogram; set style histogram errorbars gap 2 lw 1; set style fill solid 0.6
set yrange [0:1]; set grid y; set ylabel "win rate"
plot "$P/win.dat" using 2:3:xtic(1) title "win rate ± s.e.", 0.5 with lines dt 2 title "parity"
GP
fi
rm -f "$P/.x" "$P/.y"
echo "plots: $(ls "$P"/*.png 2>/dev/null | tr '\n' ' ')"
