#!/usr/bin/env bash
# tools/seeds.sh — the demo repeated over training seeds, summarised as mean ± sd (the
# README's results table):
#
#   bash tools/seeds.sh [SEED...]        default seeds 1 2 3; runs/seed<S> per seed
#   SKIP_RUNS=1 bash tools/seeds.sh ...  only summarise runs that exist
#
# Per seed it runs tools/demo.sh with SEED=<S> (the task data is the same, seed 1234;
# every stage's training seed changes). The summary (stdout and runs/seeds.md) gives, over
# the seeds: the reward model's held-out accuracy (each seed's and the mean) and its noise
# ceiling; each policy's share of the gap between SFT and the ideal row; for every policy
# the gold score, the gold win rate against SFT, KL to the reference, response length,
# distinct-2 and refusal rates (all prompts), the gold score per category, and the red
# team's refusal rate, win rate and gold score.
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
# awk helpers of the tables: a JSON number or string field of the line, and mean ± sd
# accumulators (add, then ms) keyed by any string
AWK_LIB='
  function num(key,   r) { if (match($0, "\"" key "\": -?[0-9.]+")) { r = substr($0, RSTART, RLENGTH); sub(/.*: /, "", r); return r + 0 } return "" }
  function str(key,   r) { if (match($0, "\"" key "\": \"[^\"]*\"")) { r = substr($0, RSTART, RLENGTH); sub(/.*: "/, "", r); sub(/"$/, "", r); return r } return "" }
  function add(k, v) { if (v == "") return; S[k] += v; Q[k] += v * v; N[k]++ }
  function ms(k,   m, sd) { if (!N[k]) return "-"; m = S[k] / N[k]; sd = N[k] > 1 ? (Q[k] - N[k] * m * m) / (N[k] - 1) : 0; sd = sd > 0 ? sqrt(sd) : 0; return sprintf("%.3f ± %.3f", m, sd) }
'
{
  echo "Over seeds ${SEEDS[*]} (mean ± sd; the task data is seed 1234 in every run)"
  echo
  # reward model: last held-out accuracy of each seed, and the ceiling
  for d in "${files[@]}"; do
    grep '"eval_accuracy"' "$d/rm/metrics.jsonl" | tail -1 | sed -nE 's/.*"eval_accuracy": ([0-9.]+).*/\1/p'
  done | awk -v c="$(sed -nE 's/.*"empirical_agreement": ?([0-9.]+).*/\1/p' "${files[0]}/data/ceiling.json" | head -1)" '
    { s += $1; q += $1 * $1; n++; each = each (n > 1 ? ", " : "") sprintf("%.3f", $1); if (n == 1 || $1 < lo) lo = $1 }
    END { m = s / n; sd = n > 1 ? sqrt((q - n * m * m) / (n - 1)) : 0; if (sd != sd) sd = 0
          printf "Reward model held-out accuracy %.3f ± %.3f (per seed %s); noise ceiling %.3f; %.0f%% of the ceiling, lowest seed %.0f%%\n\n", m, sd, each, c, 100 * m / c, 100 * lo / c }'
  # policies: one JSON line per (model, category) per seed -> mean ± sd
  # per seed: each policy's share of the gap between SFT (0.5) and the ideal row's win rate
  for d in "${files[@]}"; do
    awk '/"category": "all"/ { match($0, /"model": "[^"]+"/); m = substr($0, RSTART + 10, RLENGTH - 11)
                               match($0, /"win_rate": [-0-9.]+/); w[m] = substr($0, RSTART + 12, RLENGTH - 12) + 0; o[++n] = m }
         END { for (i = 1; i <= n; i++) if (o[i] != "sft" && o[i] != "ideal" && w["ideal"] > 0.5)
                 printf "%s %.4f\n", o[i], (w[o[i]] - 0.5) / (w["ideal"] - 0.5) }' "$d/eval.jsonl"
  done | awk '{ if (!($1 in n)) o[++k] = $1; s[$1] += $2; q[$1] += $2 * $2; n[$1]++ }
    END { printf "Share of the gap between SFT (0.5) and the ideal row closed (win rate - 0.5) / (ideal - 0.5):"
          for (i = 1; i <= k; i++) { m = o[i]; a = s[m] / n[m]; v = n[m] > 1 ? (q[m] - n[m] * a * a) / (n[m] - 1) : 0
                                     printf " %s %.0f%% ± %.0f%%%s", m, 100 * a, 100 * sqrt(v > 0 ? v : 0), i < k ? "," : "" }
          print "\n" }'
  cat "${files[@]/%//eval.jsonl}" | awk "$AWK_LIB"'
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
  # the red team: prompts in phrasings and with acts no training file has
  if [ -f "${files[0]}/eval_redteam.jsonl" ]; then
    echo
    echo "Red team (prompts_redteam.jsonl: phrasings and harmful acts no training file has):"
    echo
    cat "${files[@]/%//eval_redteam.jsonl}" | awk "$AWK_LIB"'
      /"category": "all"/ { match($0, /"model": "[^"]+"/); m = substr($0, RSTART + 10, RLENGTH - 11)
                            if (!(m in seen)) { seen[m] = 1; order[++nm] = m }
                            add(m SUBSEP "win", num("win_rate")); add(m SUBSEP "ref", num("refusal_unsafe")); add(m SUBSEP "gold", num("gold")) }
      END { print "| model | refusal | win rate vs SFT | gold |"; print "|---|---|---|---|"
            for (i = 1; i <= nm; i++) { m = order[i]; printf "| %s | %s | %s | %s |\n", m, ms(m SUBSEP "ref"), ms(m SUBSEP "win"), ms(m SUBSEP "gold") } }'
  fi
} | tee runs/seeds.md
