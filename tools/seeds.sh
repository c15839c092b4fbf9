#!/usr/bin/env bash
# tools/seeds.sh — the demo repeated over training seeds, summarised as mean ± sd (the
# README's results table):
#
#   bash tools/seeds.sh [SEED...]        default seeds 1 2 3; runs/seed<S> per seed
#   SKIP_RUNS=1 bash tools/seeds.sh ...  only summarise runs that exist
#
# Per seed it runs tools/demo.sh with SEED=<S> (the task data is the same, seed 1234;
# every stage's training seed changes). The summary (stdout and runs/seeds.md) gives, over
# the seeds: the reward model's held-out accuracy and its noise ceiling; for every policy
# the gold score, the gold win rate against SFT, KL to the reference, response length,
# distinct-2 and refusal rates (all prompts), and the gold score per category.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=("$@"); [ ${#SEEDS[@]} -gt 0 ] || SEEDS=(1 2 3)
if [ "${SKIP_RUNS:-0}" != 1 ]; then
  for s in "${SEEDS[@]}"; do
    echo "=== seed $s -> runs/seed$s"
    RUN="runs/seed$s" SEED="$s" bash tools/demo.sh > "runs/seed$s.log" 2>&1 \
      || { tail -20 "runs/seed$s.log"; echo "seeds: the demo with seed $s failed (runs/seed$s.log)"; exit 1; }
    grep -E "^=== \[" "runs/seed$s.log" | tail -1
  done
fi
files=(); for s in "${SEEDS[@]}"; do files+=("runs/seed$s"); done
{
  echo "Over seeds ${SEEDS[*]} (mean ± sd; the task data is seed 1234 in every run)"
  echo
  # reward model: last held-out accuracy of each seed, and the ceiling
  for d in "${files[@]}"; do
    grep '"eval_accuracy"' "$d/rm/metrics.jsonl" | tail -1 | sed -nE 's/.*"eval_accuracy": ([0-9.]+).*/\1/p'
  done | awk -v c="$(sed -nE 's/.*"empirical_agreement": ?([0-9.]+).*/\1/p' "${files[0]}/data/ceiling.json" | head -1)" '
    { s += $1; q += $1 * $1; n++ }
    END { m = s / n; sd = n > 1 ? sqrt((q - n * m * m) / (n - 1)) : 0; if (sd != sd) sd = 0
          printf "Reward model held-out accuracy %.3f ± %.3f; noise ceiling %.3f; %.0f%% of the ceiling\n\n", m, sd, c, 100 * m / c }'
  # policies: one JSON line per (model, category) per seed -> mean ± sd
  cat "${files[@]/%//eval.jsonl}" | awk '
    function num(key,   r) { if (match($0, "\"" key "\": -?[0-9.]+")) { r = substr($0, RSTART, RLENGTH); sub(/.*: /, "", r); return r + 0 } return "" }
    function str(key,   r) { if (match($0, "\"" key "\": \"[^\"]*\"")) { r = substr($0, RSTART, RLENGTH); sub(/.*: "/, "", r); sub(/"$/, "", r); return r } return "" }
    function add(k, v) { if (v == "") return; S[k] += v; Q[k] += v * v; N[k]++ }
    function ms(k,   m, sd) { if (!N[k]) return "-"; m = S[k] / N[k]; sd = N[k] > 1 ? (Q[k] - N[k] * m * m) / (N[k] - 1) : 0; sd = sd > 0 ? sqrt(sd) : 0; return sprintf("%.3f ± %.3f", m, sd) }
    { m = str("model"); c = str("category"); if (!(m in seen)) { seen[m] = 1; order[++nm] = m }
      if (c == "all") { add(m SUBSEP "gold", num("gold")); add(m SUBSEP "win", num("win_rate")); add(m SUBSEP "kl", num("kl"))
                        add(m SUBSEP "len", num("length")); add(m SUBSEP "d2", num("distinct2"))
                        add(m SUBSEP "rs", num("refusal_safe")); add(m SUBSEP "ru", num("refusal_unsafe")) }
      else { add(m SUBSEP "cat" SUBSEP c, num("gold")); if (!(c in cs)) { cs[c] = 1; cats[++nc] = c } } }
    END {
      print "| model | gold | win rate vs SFT | KL (nats) | length | distinct-2 | refusal safe | refusal unsafe |"
      print "|---|---|---|---|---|---|---|---|"
      for (i = 1; i <= nm; i++) { m = order[i]
        printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", m, ms(m SUBSEP "gold"), ms(m SUBSEP "win"), ms(m SUBSEP "kl"), ms(m SUBSEP "len"), ms(m SUBSEP "d2"), ms(m SUBSEP "rs"), ms(m SUBSEP "ru") }
      print ""; printf "| gold by category |"; for (j = 1; j <= nc; j++) printf " %s |", cats[j]; print ""
      printf "|---|"; for (j = 1; j <= nc; j++) printf "---|"; print ""
      for (i = 1; i <= nm; i++) { m = order[i]; printf "| %s |", m; for (j = 1; j <= nc; j++) printf " %s |", ms(m SUBSEP "cat" SUBSEP cats[j]); print "" }
    }'
} | tee runs/seeds.md
