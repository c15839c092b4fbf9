#!/usr/bin/env bash
# bench/run.sh — what `make bench` runs (BUILD=build bash bench/run.sh): every benchmark
# of rlhf-c in one go, side by side with PyTorch on the same CPU, ending in one table and
# a JSON file of every number (bench/results.json, or $OUT/bench.json when OUT is set).
#
#   1. OpenBLAS sgemm on every GEMM shape of the tiny and 124M training step
#      (build/bench/bench_sgemm), once with the environment's OPENBLAS_CORETYPE ("preset")
#      and once with it unset ("auto", OpenBLAS's own CPU detection);
#   2. our training step and KV-cache generation (build/bench/bench_model, the model
#      engineer's program) under both cores — run as separate processes of one
#      measurement each, so the median is over processes;
#   3. the same GPT-2 in PyTorch (bench/torch_gpt2.py under Debian's /usr/bin/python3):
#      "default" = the environment as it is; "best" = tcmalloc preloaded, the OpenMP
#      OpenBLAS first on the library path, OPENBLAS_CORETYPE unset;
#   4. checkpoint I/O of the 124M model vs raw write+fsync/read (build/bench/bench_io);
#   5. weight sync: HDF5 image + MPI_Bcast, and the parameter-buffer path of
#      ppo.weight_sync=params, vs raw MPI_Bcast (build/bench/bench_bcast
#      under mpirun -np $BENCH_NP, oversubscribed).
#   6. the PPO job: rollouts/s with 1, 2, 4 actors, time split per role, learner idle
#      fraction sync vs async (bench/bench_ppo.sh; scaling needs cores >= actors + 2).
#
# Every program prints `RESULT <tab> key <tab> value <tab> unit` lines; a key seen several
# times (repeated processes) is reduced to its median. Ratios in the table are computed
# from those medians. Environment knobs: BENCH_REPS (>= 5, default 5), BENCH_THREADS
# (default 2), BENCH_NP (ranks for the broadcast, default 4), BENCH_ONLY (space-separated
# subset of: sgemm model torch io bcast ppo), BENCH_FULL=1 (also the 124M model under the
# preset core, slow). Nothing here is part of `make test`. Exit status 1 if a benchmark
# program failed (the table still shows what was measured).
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
REPS=${BENCH_REPS:-5}
THREADS=${BENCH_THREADS:-2}
NP=${BENCH_NP:-4}
ONLY=${BENCH_ONLY:-sgemm model torch io bcast ppo}
PY=/usr/bin/python3
TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
OMP_BLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-openmp
if [ -n "${OUT:-}" ]; then JSON=$OUT/bench.json; else JSON=bench/results.json; fi
case $REPS in '' | *[!0-9]*) echo "bench: BENCH_REPS must be a number >= 5" >&2; exit 2 ;; esac
[ "$REPS" -ge 5 ] || { echo "bench: BENCH_REPS must be >= 5 (medians of >= 5)" >&2; exit 2; }
case $THREADS in '' | *[!0-9]* | 0) echo "bench: BENCH_THREADS must be >= 1" >&2; exit 2 ;; esac
case $NP in '' | *[!0-9]* | 0 | 1) echo "bench: BENCH_NP must be >= 2" >&2; exit 2 ;; esac

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=$THREADS
TMP=$(mktemp -d /tmp/rlhf-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
RAW=$TMP/results.tsv
: >"$RAW"
failed=()
t_start=$SECONDS
want() { [[ " $ONLY " == *" $1 "* ]]; }

# The two core settings: the environment's preset (if any) and OpenBLAS's detection.
ENV_CORE=${OPENBLAS_CORETYPE:-}
CORES=()
[ -n "$ENV_CORE" ] && CORES+=(preset)
CORES+=(auto)
core_env() { # label -> env arguments
  if [ "$1" = preset ]; then echo "OPENBLAS_CORETYPE=$ENV_CORE"; else echo "-u OPENBLAS_CORETYPE"; fi
}

# run <name> <sed expression for keys or ""> <command...>: output to the terminal (minus
# RESULT lines) and RESULT lines, keys rewritten, into $RAW.
run() {
  local name=$1 rewrite=$2; shift 2
  local log="$TMP/$name.log"
  "$@" >"$log" 2>&1
  local rc=$?
  [ "${SHOW:-1}" = 1 ] && grep -v '^RESULT' "$log" | sed 's/^/  /'
  if [ -n "$rewrite" ]; then grep '^RESULT' "$log" | sed "$rewrite" >>"$RAW"
  else grep '^RESULT' "$log" >>"$RAW"; fi
  if [ $rc -ne 0 ]; then
    failed+=("$name (exit $rc)")
    echo "  !! $name failed with exit status $rc"
  fi
  return 0
}

need() { [ -x "$1" ] || { echo "bench: $1 is missing; run make first" >&2; exit 1; }; }
for b in bench_sgemm bench_model bench_io bench_bcast; do need "$BUILD/bench/$b"; done

echo "rlhf-c benchmarks: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"\
  "load average $(cut -d' ' -f1-3 /proc/loadavg); OPENBLAS_NUM_THREADS=$THREADS,"\
  "OPENBLAS_CORETYPE=${ENV_CORE:-unset}; median of $REPS"
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

# ---- 1. sgemm limit -------------------------------------------------------------------
if want sgemm; then
  for c in "${CORES[@]}"; do
    echo "== sgemm, core setting '$c'"
    # shellcheck disable=SC2046
    run "sgemm_$c" "" env $(core_env "$c") "$BUILD/bench/bench_sgemm" all "$REPS" "$c"
  done
fi

# ---- 2. our model ---------------------------------------------------------------------
if want model; then
  for c in "${CORES[@]}"; do
    presets="tiny gpt2"
    [ "$c" = preset ] && [ "${BENCH_FULL:-0}" != 1 ] && presets="tiny"
    for p in $presets; do
      echo "== our model, $p, core setting '$c' ($REPS processes, one measurement each)"
      for i in $(seq "$REPS"); do
        # the first process's output is shown; the medians are in the summary
        SHOW=$([ "$i" = 1 ] && echo 1 || echo 0)
        # shellcheck disable=SC2046
        run "model_${c}_${p}_$i" "s/^RESULT\tmodel\./RESULT\tmodel.$c./" \
          env $(core_env "$c") "$BUILD/bench/bench_model" "$p" 1
      done
      SHOW=1
    done
  done
fi

# ---- 3. PyTorch -------------------------------------------------------------------------
if want torch; then
  if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "== PyTorch: $PY cannot import torch; skipped"
    failed+=("torch (not importable by $PY)")
  else
    best_env=(-u OPENBLAS_CORETYPE)
    best_note="OPENBLAS_CORETYPE unset"
    if [ -f "$TCMALLOC" ]; then best_env+=("LD_PRELOAD=$TCMALLOC"); best_note+=", tcmalloc"
    else best_note+=", NO tcmalloc (apt-get install libtcmalloc-minimal4)"; fi
    if [ -f "$OMP_BLAS_DIR/libblas.so.3" ]; then
      best_env+=("LD_LIBRARY_PATH=$OMP_BLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
      best_note+=", OpenMP OpenBLAS"
    else best_note+=", NO OpenMP OpenBLAS (apt-get install libopenblas0-openmp)"; fi
    for p in tiny gpt2; do
      echo "== PyTorch default, $p"
      # (AdamW is timed in the best setup only: in the default one it takes ~10 s at 124M)
      skip=(); [ "$p" = gpt2 ] && skip=(--skip-adamw)
      run "torch_default_$p" "" "$PY" bench/torch_gpt2.py --preset "$p" --threads "$THREADS" \
        --reps "$REPS" --label default "${skip[@]}"
      echo "== PyTorch best ($best_note), $p"
      run "torch_best_$p" "" env "${best_env[@]}" "$PY" bench/torch_gpt2.py --preset "$p" \
        --threads "$THREADS" --reps "$REPS" --label best
    done
  fi
fi

# ---- 4. checkpoint I/O ------------------------------------------------------------------
if want io; then
  echo "== checkpoint I/O (124M)"
  run io "" "$BUILD/bench/bench_io" gpt2 "$REPS"
fi

# ---- 5. weight sync -----------------------------------------------------------------------
if want bcast; then
  echo "== weight sync, mpirun -np $NP (oversubscribed on $(nproc) cores)"
  run bcast "" mpirun -np "$NP" --oversubscribe "$BUILD/bench/bench_bcast" gpt2 "$REPS"
fi

# ---- 6. the PPO job ---------------------------------------------------------------------
if want ppo; then
  echo "== PPO job: actor scaling, time split, async learner idle (bench/bench_ppo.sh)"
  run ppo "" env BUILD="$BUILD" bash bench/bench_ppo.sh 1 2 4
fi

# ---- reduce: median of every key ------------------------------------------------------
MED=$TMP/median.tsv
# numeric values: median; text values (core names): the first seen
awk -F'\t' '$1 == "RESULT" { print $2 "\t" $3 "\t" $4 }' "$RAW" | sort -t$'\t' -k1,1 -k2,2g |
  awk -F'\t' '
    function flush() {
      if (key == "") return
      if (n % 2) m = v[(n + 1) / 2]; else m = (v[n / 2] + v[n / 2 + 1]) / 2
      if (!num) m = v[1]
      printf "%s\t%s\t%s\t%d\n", key, m, unit, n
    }
    $1 != key { flush(); key = $1; unit = $3; n = 0; num = 1 }
    { v[++n] = $2; if ($2 !~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/) num = 0 }
    END { flush() }' >"$MED"

val() { awk -F'\t' -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print "" }' "$MED"; }
ratio() { # a / b with 2 decimals, or "-" if either is missing
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
fmt() { [ -z "$1" ] && { echo "-"; return; }; awk -v x="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, x }'; }

# ---- table ----------------------------------------------------------------------------
echo
echo "================ summary (medians; ratios of medians) ================"
if want sgemm; then
  echo "sgemm limit, FLOP-weighted over the GEMMs of one training step (GFLOP/s):"
  for p in tiny gpt2; do
    line="  $p:"
    for c in "${CORES[@]}"; do
      line+=" $c ($(val "sgemm.$c.core")) $(fmt "$(val "sgemm.$c.$p.step.gflops")")"
    done
    [ ${#CORES[@]} -eq 2 ] && line+="   auto/preset $(ratio "$(val "sgemm.auto.$p.step.gflops")" "$(val "sgemm.preset.$p.step.gflops")")"
    echo "$line"
  done
  echo "the same GEMM calls with gemm.c (our kernel, same threads; GFLOP/s and ratio to that core's OpenBLAS):"
  for p in tiny gpt2; do
    line="  $p:"
    for c in "${CORES[@]}"; do
      og=$(val "sgemm.$c.$p.step.own_gflops")
      [ -z "$og" ] && continue
      line+=" $c $(fmt "$og") ($(ratio "$og" "$(val "sgemm.$c.$p.step.gflops")"))"
    done
    echo "$line"
  done
fi
if want model || want torch; then
  printf '%-34s %12s %12s %8s %14s\n' "training step fwd+bwd (no AdamW)" "tokens/s" "GFLOP/s" "%sgemm" "gen tokens/s"
  for p in tiny gpt2; do
    for c in "${CORES[@]}"; do
      tk=$(val "model.$c.$p.train.tokens_per_s")
      [ -z "$tk" ] && continue
      gf=$(val "model.$c.$p.train.gflops")
      lim=$(val "sgemm.$c.$p.step.gflops")
      pct=$(awk -v a="$gf" -v b="$lim" 'BEGIN { if (a == "" || b == "") print "-"; else printf "%.0f", 100 * a / b }')
      printf '%-34s %12s %12s %8s %14s\n' "ours $p ($c core)" "$(fmt "$tk" 0)" "$(fmt "$gf")" "$pct" \
        "$(fmt "$(val "model.$c.$p.generate.tokens_per_s")" 0)"
    done
    for s in default best; do
      tk=$(val "torch.$s.$p.train_tok_s")
      [ -z "$tk" ] && continue
      printf '%-34s %12s %12s %8s %14s\n' "PyTorch $p ($s)" "$(fmt "$tk" 0)" \
        "$(fmt "$(val "torch.$s.$p.train_gflops")")" "" "$(fmt "$(val "torch.$s.$p.gen_tok_s")" 0)"
    done
    for c in "${CORES[@]}"; do
      for s in best default; do
        ours_t=$(val "model.$c.$p.train.tokens_per_s"); th_t=$(val "torch.$s.$p.train_tok_s")
        [ -z "$ours_t" ] || [ -z "$th_t" ] && continue
        printf '  ratio ours(%s core)/PyTorch-%s, %s: train %s, generate %s (>1: ours faster)\n' \
          "$c" "$s" "$p" "$(ratio "$ours_t" "$th_t")" \
          "$(ratio "$(val "model.$c.$p.generate.tokens_per_s")" "$(val "torch.$s.$p.gen_tok_s")")"
      done
    done
    for c in "${CORES[@]}"; do
      ob=$(val "model.$c.$p.train_openblas_gemm.ms"); om=$(val "model.$c.$p.train.ms")
      [ -z "$ob" ] && continue
      printf '  own GEMM (gemm.c) in the step, %s (%s core): %s ms, with OpenBLAS for the same products %s ms: %s\n' \
        "$p" "$c" "$(fmt "$om")" "$(fmt "$ob")" "$(ratio "$ob" "$om")"
    done
    for c in "${CORES[@]}"; do
      pb=$(val "model.$c.$p.decode.pct_of_bandwidth")
      [ -z "$pb" ] && continue
      printf '  decode, %s (%s core): %s ms per token step, %s%% of the bound of reading its %s MB of weights at %s GB/s\n' \
        "$p" "$c" "$(fmt "$(val "model.$c.$p.decode.step_ms")")" "$(fmt "$pb" 0)" \
        "$(fmt "$(val "model.$c.$p.decode.weight_mb")" 0)" "$(fmt "$(val "model.$c.$p.decode.read_gbs")" 1)"
    done
    # the full training step: fwd+bwd plus the optimizer (ours: grad-norm clip + AdamW;
    # PyTorch: optimizer.step(), timed alone; its default setup skips it at 124M)
    ad=$(val "torch.best.$p.adamw_ms")
    for c in "${CORES[@]}"; do
      of=$(val "model.$c.$p.step_full.ms"); oo=$(val "model.$c.$p.optim.ms")
      [ -z "$of" ] && continue
      tf=$(awk -v a="$(val "torch.best.$p.train_ms")" -v b="$ad" 'BEGIN { if (a == "" || b == "") print ""; else printf "%.3f", a + b }')
      printf '  full step fwd+bwd+AdamW, %s (%s core): ours %s ms (optimizer %s ms), PyTorch-best %s ms (AdamW %s ms): ratio %s (>1: ours faster)\n' \
        "$p" "$c" "$(fmt "$of")" "$(fmt "$oo")" "$(fmt "$tf")" "$(fmt "$ad")" "$(ratio "$tf" "$of")"
    done
  done
fi
if want io; then
  echo "checkpoint I/O, 124M ($(fmt "$(awk -v b="$(val io.gpt2.bytes)" 'BEGIN { print b / 1e6 }')") MB), GB/s:"
  for w in write read_cold read_warm; do
    ck=$(val "io.gpt2.ckpt_$w.gbps"); rw=$(val "io.gpt2.raw_$w.gbps")
    printf '  %-10s ckpt %6s  raw %6s  ckpt/raw %s\n' "$w" "$(fmt "$ck" 2)" "$(fmt "$rw" 2)" "$(ratio "$ck" "$rw")"
  done
fi
if want bcast; then
  it=$(val "bcast.gpt2.np$NP.image_total.ms"); rb=$(val "bcast.gpt2.np$NP.raw_bcast.ms")
  printf 'weight sync 124M, %d ranks: image build+bcast+load %s ms, raw MPI_Bcast %s ms, image/raw %s\n' \
    "$NP" "$(fmt "$it")" "$(fmt "$rb")" "$(ratio "$it" "$rb")"
  printf '  (build %s ms, bcast %s ms, load %s ms)\n' "$(fmt "$(val "bcast.gpt2.np$NP.image_build.ms")")" \
    "$(fmt "$(val "bcast.gpt2.np$NP.image_bcast.ms")")" "$(fmt "$(val "bcast.gpt2.np$NP.image_load.ms")")"
  pt=$(val "bcast.gpt2.np$NP.params_total.ms")
  printf 'weight sync 124M, %d ranks, ppo.weight_sync=params (the default): %s ms, params/raw %s (goal <= 1.2)\n' \
    "$NP" "$(fmt "$pt")" "$(ratio "$pt" "$rb")"
fi
if want ppo; then
  printf 'PPO job rollouts/s (collect phase) with 1 / 2 / 4 actors: %s / %s / %s (scaling 2: %s, 4: %s; %d cores)\n' \
    "$(fmt "$(val ppo.sync_a1.rollouts_per_s_collect)")" "$(fmt "$(val ppo.sync_a2.rollouts_per_s_collect)")" \
    "$(fmt "$(val ppo.sync_a4.rollouts_per_s_collect)")" "$(fmt "$(val ppo.scaling_a2)" 2)" "$(fmt "$(val ppo.scaling_a4)" 2)" "$(nproc)"
  printf 'PPO learner idle fraction, 2 actors: sync %s, async (max_staleness 1) %s\n' \
    "$(fmt "$(val ppo.sync_a2.learner_idle_frac)" 3)" "$(fmt "$(val ppo.async_a2.learner_idle_frac)" 3)"
  printf 'PPO whole-update rate, 2 actors, sync: run.threads=0 (auto, the default) vs one thread per rank: %sx (rollouts/s %s vs %s)\n' \
    "$(fmt "$(val ppo.auto_threads_speedup)" 2)" "$(fmt "$(val ppo.sync_auto_a2.rollouts_per_s_update)")" \
    "$(fmt "$(val ppo.sync_a2.rollouts_per_s_update)")"
fi
echo "note: bench_model's numbers are one measurement per process (after a warm-up); their"
echo "median is over $REPS processes. Load average before/after: $LOAD_BEFORE / $(cut -d' ' -f1 /proc/loadavg)."

# ---- JSON -----------------------------------------------------------------------------
mkdir -p "$(dirname "$JSON")"
{
  printf '{\n  "meta": {"date": "%s", "commit": "%s", "cpu": "%s", "cores": %d, ' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //; s/"//g')" "$(nproc)"
  printf '"reps": %d, "threads": %d, "openblas_coretype_env": "%s", "load_before": %s, ' \
    "$REPS" "$THREADS" "${ENV_CORE:-unset}" "$LOAD_BEFORE"
  printf '"load_after": %s, "seconds": %d, "failed": [' "$(cut -d' ' -f1 /proc/loadavg)" $((SECONDS - t_start))
  first=1
  for f in "${failed[@]+"${failed[@]}"}"; do
    [ $first -eq 1 ] || printf ', '; first=0; printf '"%s"' "${f//\"/}"
  done
  printf ']},\n  "results": {\n'
  awk -F'\t' '{
      v = $2; if (v !~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/) v = "\"" v "\""
      printf "%s    \"%s\": {\"value\": %s, \"unit\": \"%s\", \"n\": %d}", (NR > 1 ? ",\n" : ""), $1, v, $3, $4
    } END { printf "\n" }' "$MED"
  printf '  }\n}\n'
} >"$JSON.tmp" && mv "$JSON.tmp" "$JSON"
echo "wrote $JSON ($(wc -l <"$MED") numbers) in $((SECONDS - t_start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
