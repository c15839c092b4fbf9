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
#      OpenBLAS first on the library path, OPENBLAS_CORETYPE unset. bench/deps.sh installs
#      the packages this needs first (as root). Where it cannot, best is not run; where the
#      run shows the setup did not take (the script reports what it loaded), its row reads
#      best-REJECTED. Either way there is no ratio against it, and the summary says why;
#   4. checkpoint I/O of the 124M model vs raw write+fsync/read (build/bench/bench_io);
#   5. weight sync: HDF5 image + MPI_Bcast, and the parameter-buffer path of
#      ppo.weight_sync=params, vs raw MPI_Bcast (build/bench/bench_bcast
#      under mpirun -np $BENCH_NP, oversubscribed).
#   6. the PPO job: rollouts/s with 1, 2, 4 actors, time split per role, learner idle
#      fraction sync vs async (bench/bench_ppo.sh; scaling needs cores >= actors + 2).
#   7. the chunked LM head: peak RSS and time of one SFT learner step at Qwen's vocabulary
#      (151,936), SmolLM2's width (576, 4 layers), 4 x 512 tokens, chunked vs all rows at
#      once (build/bench/bench_lm_chunk, one process per mode, environment's core).
#   8. rollout scheduling (build/bench/bench_rollout, once per preset): a GRPO group of 8
#      with the shared prefill vs without, random response lengths with in-flight
#      batching vs static batches, and the reward server's scoring of
#      the group (reference log-probs + reward-model score) with the prompt once through
#      the KV caches vs the batched forward.
#   9. activation recomputation: peak RSS and time of one SFT learner step at 2,048 tokens
#      (GPT-2 tiny's shape, 4 layers, max_seq_len 2048), train.recompute on vs off
#      (build/bench/bench_recompute, one process per mode, environment's core).
#  10. LoRA rank 16 vs full fine-tuning at the smol shape: peak RSS and time of one SFT
#      step, and the bytes of one weight-sync update (build/bench/bench_lora, one process
#      per mode).
#  11. the sharded optimizer (optim.zero): optimizer bytes and peak RSS per rank and the
#      optimizer part of a step (gradient reduction, AdamW, parameter all-gather) for
#      K = 1, 2, 4 learner ranks x optim.zero = 0, 1, 2 at GPT-2 124M, random weights
#      (build/bench/bench_zero under mpirun, oversubscribed; BENCH_ZERO_PRESET=tiny for a
#      quick run).
#  12. decode weights: GPT-2 124M and SmolLM2-135M's shape at batch 8 from the fp32 and
#      the bf16 decode copy in the same process (gen.weights; bf16 widened, and with the
#      AVX512-BF16 dot products where the CPU has them), each against the bound of
#      reading its bytes once per step; then GPT-2 124M's decode step at cache positions
#      128, 512, 1024, 2048 (build/bench/bench_model decode, one process).
#  13. smol: the Llama family at SmolLM2-135M's shape (30 layers, 576 wide, 9 heads, 3 kv
#      heads, MLP 1536, vocabulary 49152, tied; random weights): training step 4 x 256 and
#      KV-cache generation at batch 8 (16 + 48 tokens), ours (build/bench/bench_model smol,
#      one process, environment's core) and bench/torch_llama.py in the default and best
#      setups, with ratios and decode's % of the memory-bandwidth bound. Slow (a training
#      step moves ~0.9 TFLOP): BENCH_ONLY=smol runs it alone.
#  14. LoRA in an online job at the smol shape (bench/bench_lora_ppo.sh: real MPMD launches
#      of learner + reward server + actor, 3 updates each): peak RSS per rank of full
#      fine-tuning vs LoRA rank 16 for PPO (the LoRA critic on a reward-model trunk copy
#      and on the policy's own trunk) and GRPO, the learner + reward server share, weight-
#      sync bytes per update. Slow (five jobs): BENCH_ONLY=lorappo runs it alone.
#
# Every program prints `RESULT <tab> key <tab> value <tab> unit` lines; a key seen several
# times (repeated processes) is reduced to its median. Ratios in the table are computed
# from those medians. Every line whose figure depends on OpenBLAS names the core it ran
# (e.g. [Zen auto]: OpenBLAS's own detection; [Haswell preset]: OPENBLAS_CORETYPE). gemm.c
# (our AVX-512 GEMM) is reported next to OpenBLAS, the faster marked, where it is compiled
# in; elsewhere the summary says why it is missing and prints no ratio for it.
# Environment knobs: BENCH_REPS (>= 5, default 5), BENCH_THREADS (default 2), BENCH_NP
# (ranks for the broadcast, default 4), BENCH_ONLY (space-separated subset of: sgemm model
# torch io bcast ppo lmchunk rollout recompute lora zero decode smol lorappo), BENCH_PRESETS (the model sizes of sgemm, model, torch and rollout: "tiny
# gpt2", the default, or one of them), BENCH_FULL=1 (also the 124M model under the preset
# core, slow); bench/deps.sh's BENCH_NO_INSTALL, BENCH_TCMALLOC, BENCH_OMP_BLAS_DIR.
# Nothing here is part of `make test`. Exit status 1 if a benchmark program failed (the
# table still shows what was measured); what could not be measured (PyTorch or its best
# setup, gemm.c) is listed at the end and in the JSON (meta.not_measured).
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
REPS=${BENCH_REPS:-5}
THREADS=${BENCH_THREADS:-2}
NP=${BENCH_NP:-4}
ONLY=${BENCH_ONLY:-sgemm model torch io bcast ppo lmchunk rollout recompute lora zero decode smol lorappo}
ZPRESET=${BENCH_ZERO_PRESET:-gpt2}
PRESETS=${BENCH_PRESETS:-tiny gpt2}
if [ -n "${OUT:-}" ]; then JSON=$OUT/bench.json; else JSON=bench/results.json; fi
case $REPS in '' | *[!0-9]*) echo "bench: BENCH_REPS must be a number >= 5" >&2; exit 2 ;; esac
[ "$REPS" -ge 5 ] || { echo "bench: BENCH_REPS must be >= 5 (medians of >= 5)" >&2; exit 2; }
case $THREADS in '' | *[!0-9]* | 0) echo "bench: BENCH_THREADS must be >= 1" >&2; exit 2 ;; esac
for p in $PRESETS; do
  case $p in tiny | gpt2) ;; *) echo "bench: BENCH_PRESETS: '$p' is not tiny or gpt2" >&2; exit 2 ;; esac
done
case $NP in '' | *[!0-9]* | 0 | 1) echo "bench: BENCH_NP must be >= 2" >&2; exit 2 ;; esac

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=$THREADS
TMP=$(mktemp -d /tmp/rlhf-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
RAW=$TMP/results.tsv
: >"$RAW"
failed=()
not_measured=() # comparisons the bench could not make, each with what to do about it
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
for b in bench_sgemm bench_model bench_io bench_bcast bench_lm_chunk bench_rollout bench_recompute bench_lora bench_zero; do need "$BUILD/bench/$b"; done

echo "rlhf-c benchmarks: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"\
  "load average $(cut -d' ' -f1-3 /proc/loadavg); OPENBLAS_NUM_THREADS=$THREADS,"\
  "OPENBLAS_CORETYPE=${ENV_CORE:-unset}; median of $REPS"
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

# ---- 1. sgemm limit -------------------------------------------------------------------
if want sgemm; then
  for c in "${CORES[@]}"; do
    echo "== sgemm, core setting '$c'"
    for p in $PRESETS; do
      # shellcheck disable=SC2046
      run "sgemm_${c}_$p" "" env $(core_env "$c") "$BUILD/bench/bench_sgemm" "$p" "$REPS" "$c"
    done
  done
fi

# ---- 2. our model ---------------------------------------------------------------------
if want model; then
  for c in "${CORES[@]}"; do
    presets=$PRESETS
    [ "$c" = preset ] && [ "${BENCH_FULL:-0}" != 1 ] && presets=${PRESETS/gpt2/}
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
# BEST_MISSING: why PyTorch's best setup was not measured ("" when it was); the results
# are checked again after the run (best_ok below), since LD_PRELOAD and LD_LIBRARY_PATH
# can fail silently.
BEST_MISSING=""
if want torch; then
  # shellcheck source=bench/deps.sh
  source bench/deps.sh
  echo "== PyTorch dependencies (bench/deps.sh)"
  bench_deps_install
  BEST_MISSING=$(bench_best_missing)
  if ! bench_torch_ok; then
    echo "== PyTorch: $BENCH_PY cannot import torch; not measured"
    not_measured+=("PyTorch: $BENCH_PY cannot import torch; as root: apt-get install -y --no-install-recommends python3-torch (make bench run as root installs it)")
  else
    best_env=(-u OPENBLAS_CORETYPE "LD_PRELOAD=$BENCH_TCMALLOC"
      "LD_LIBRARY_PATH=$BENCH_OMP_BLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
    for p in $PRESETS; do
      echo "== PyTorch default (the environment as it is), $p"
      # (AdamW is timed in the best setup only: in the default one it takes ~10 s at 124M)
      skip=(); [ "$p" = gpt2 ] && skip=(--skip-adamw)
      run "torch_default_$p" "" "$BENCH_PY" bench/torch_gpt2.py --preset "$p" --threads "$THREADS" \
        --reps "$REPS" --label default "${skip[@]}"
      [ -n "$BEST_MISSING" ] && continue
      echo "== PyTorch best (tcmalloc, OpenMP OpenBLAS, OPENBLAS_CORETYPE unset), $p"
      run "torch_best_$p" "" env "${best_env[@]}" "$BENCH_PY" bench/torch_gpt2.py --preset "$p" \
        --threads "$THREADS" --reps "$REPS" --label best
    done
    if [ -n "$BEST_MISSING" ]; then
      BEST_MISSING="missing $BEST_MISSING; as root: apt-get install -y --no-install-recommends $BEST_MISSING (make bench run as root installs them)"
      echo "== PyTorch best: not measured: $BEST_MISSING"
    fi
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

# ---- 7. the chunked LM head --------------------------------------------------------------
if want lmchunk; then
  echo "== LM head in chunks vs all at once: SFT step, V=151936, width 576, 4 layers, 4 x 512 tokens"
  for mode in chunked full; do
    run "lmchunk_$mode" "" "$BUILD/bench/bench_lm_chunk" "$mode"
  done
fi

# ---- 8. rollout scheduling ------------------------------------------------------------
if want rollout; then
  for p in $PRESETS; do
    echo "== rollout scheduling, $p: shared prefill (GRPO group of 8), in-flight batching, shared-prompt scoring (median of 3 alternating pairs each)"
    run "rollout_$p" "" "$BUILD/bench/bench_rollout" "$p"
  done
fi

# ---- 9. activation recomputation ---------------------------------------------------------
if want recompute; then
  echo "== activation recomputation on vs off: SFT step, GPT-2 tiny shape, 4 layers, 1 x 2048 tokens"
  for mode in on off; do
    run "recompute_$mode" "" "$BUILD/bench/bench_recompute" "$mode"
  done
fi

# ---- 10. LoRA vs full fine-tuning ---------------------------------------------------------
if want lora; then
  echo "== LoRA rank 16 (all-linear) vs full fine-tuning: SFT step, smol shape, 1 x 128 tokens"
  for mode in lora full; do
    run "lora_$mode" "" "$BUILD/bench/bench_lora" "$mode"
  done
fi

# ---- 11. the sharded optimizer ----------------------------------------------------------
if want zero; then
  echo "== optim.zero 0/1/2 with 1, 2, 4 learner ranks, $ZPRESET: optimizer bytes, peak RSS, optimizer step"
  for k in 1 2 4; do
    for z in 0 1 2; do
      run "zero_np${k}_z$z" "" mpirun -np "$k" --oversubscribe "$BUILD/bench/bench_zero" "$ZPRESET" "$z" 3
    done
  done
fi

# ---- 12. decode weights: fp32 vs bf16, long cache ----------------------------------------
if want decode; then
  echo "== decode at batch 8: fp32 vs bf16 decode copy (gpt2, smol); GPT-2 step at positions 128..2048"
  run "decode" "" "$BUILD/bench/bench_model" decode 3
fi

# ---- 14. LoRA in an online job at the smol shape ----------------------------------------
if want lorappo; then
  echo "== LoRA rank 16 vs full fine-tuning in real PPO / GRPO jobs, smol shape (bench/bench_lora_ppo.sh)"
  run lorappo "" env BUILD="$BUILD" bash bench/bench_lora_ppo.sh 3 16
fi

# ---- 13. smol: the Llama family at SmolLM2-135M's shape vs PyTorch ---------------------
SMOL_BEST_MISSING=""
if want smol; then
  echo "== smol (llama, SmolLM2-135M shape), ours: train 4x256, generate 8 x (16 + 48), one process, best of 3"
  run smol_ours "" "$BUILD/bench/bench_model" smol 3
  # shellcheck source=bench/deps.sh
  source bench/deps.sh
  bench_deps_install >/dev/null
  if ! bench_torch_ok; then
    not_measured+=("PyTorch smol: $BENCH_PY cannot import torch; as root: apt-get install -y --no-install-recommends python3-torch")
  else
    echo "== smol, PyTorch default (the environment as it is)"
    run smol_torch_default "" "$BENCH_PY" bench/torch_llama.py --preset smol --threads "$THREADS" \
      --reps "$REPS" --label default
    SMOL_BEST_MISSING=$(bench_best_missing)
    if [ -z "$SMOL_BEST_MISSING" ]; then
      echo "== smol, PyTorch best (tcmalloc, OpenMP OpenBLAS, OPENBLAS_CORETYPE unset)"
      run smol_torch_best "" env -u OPENBLAS_CORETYPE "LD_PRELOAD=$BENCH_TCMALLOC" \
        "LD_LIBRARY_PATH=$BENCH_OMP_BLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "$BENCH_PY" bench/torch_llama.py --preset smol --threads "$THREADS" --reps "$REPS" --label best
    else
      not_measured+=("PyTorch best setup, smol: missing $SMOL_BEST_MISSING")
    fi
  fi
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
# faster <time or rate a> <b> <name a> <name b> [rate]: "name (x.xx)" for the faster of
# two times (lower wins) — or of two rates with a fifth argument "rate" (higher wins)
faster() {
  awk -v a="$1" -v b="$2" -v na="$3" -v nb="$4" -v rate="${5:-}" 'BEGIN {
    if (a == "" || b == "" || a + 0 <= 0 || b + 0 <= 0) { print "-"; exit }
    if (rate != "") { t = a; a = b; b = t }
    if (a <= b) printf "%s (%.2fx)", na, b / a; else printf "%s (%.2fx)", nb, a / b }'
}
fmt() { [ -z "$1" ] && { echo "-"; return; }; awk -v x="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, x }'; }

# ---- labels --------------------------------------------------------------------------
# [core source] of our runs: the OpenBLAS core bench_sgemm / bench_model reported, and
# whether OPENBLAS_CORETYPE chose it (preset) or OpenBLAS's own detection did (auto).
core_tag() {
  local n
  n=$(val "model.$1.core"); [ -z "$n" ] && n=$(val "sgemm.$1.core")
  echo "[${n:-?} $1]"
}
# [core source, build, allocator] of a PyTorch setup at a preset
torch_tag() {
  local src=auto
  [ "$1" = default ] && [ -n "$ENV_CORE" ] && src=preset
  local tc=glibc; [ "$(val "torch.$1.$2.tcmalloc")" = 1 ] && tc=tcmalloc
  echo "[$(val "torch.$1.$2.blas_core") $src, $(val "torch.$1.$2.blas_build"), $tc]"
}
# 0 when PyTorch's best setup at preset $1 was measured and took effect; otherwise the
# reason goes to BEST_WHY (printed in place of every ratio against it)
best_ok() {
  [ -n "$BEST_MISSING" ] && { BEST_WHY="not measured: $BEST_MISSING"; return 1; }
  [ -z "$(val "torch.best.$1.train_tok_s")" ] && { BEST_WHY="no result (see its output above)"; return 1; }
  local tc build
  tc=$(val "torch.best.$1.tcmalloc"); build=$(val "torch.best.$1.blas_build")
  [ "$tc" = 1 ] && [ "$build" = openmp ] && return 0
  BEST_WHY="the setup did not take (tcmalloc loaded: $tc, OpenBLAS build: $build; check $BENCH_TCMALLOC and $BENCH_OMP_BLAS_DIR)"
  return 1
}
# gemm.c's absence, as the programs reported it ("" when it ran)
gemm_absent() {
  local c
  for c in "${CORES[@]}"; do
    [ "$(val "model.$c.gemm_c")" = 0 ] || [ "$(val "sgemm.$c.gemm_c")" = 0 ] || continue
    val "model.$c.gemm_c_absent" | grep . || val "sgemm.$c.gemm_c_absent"
    return
  done
}

# ---- table ----------------------------------------------------------------------------
echo
echo "================ summary (medians; ratios of medians) ================"
echo "[core source]: the OpenBLAS core a figure ran on; auto = OpenBLAS's own detection,"
echo "preset = OPENBLAS_CORETYPE (=${ENV_CORE:-unset} here)"
GEMM_ABSENT=$(gemm_absent)
if want sgemm; then
  echo "sgemm limit, FLOP-weighted over the GEMMs of one training step (GFLOP/s):"
  for p in $PRESETS; do
    line="  $p:"
    for c in "${CORES[@]}"; do
      line+=" OpenBLAS $(core_tag "$c") $(fmt "$(val "sgemm.$c.$p.step.gflops")")"
    done
    [ ${#CORES[@]} -eq 2 ] && line+="   auto/preset $(ratio "$(val "sgemm.auto.$p.step.gflops")" "$(val "sgemm.preset.$p.step.gflops")")"
    echo "$line"
  done
  echo "the same GEMM calls with gemm.c (our kernel, same threads), against that core's OpenBLAS:"
  for p in $PRESETS; do
    for c in "${CORES[@]}"; do
      og=$(val "sgemm.$c.$p.step.own_gflops"); bg=$(val "sgemm.$c.$p.step.gflops")
      if [ -z "$og" ]; then
        echo "  $p: gemm.c: ${GEMM_ABSENT:-no result}: no gemm.c figure, no ratio"
        break
      fi
      echo "  $p: gemm.c $(fmt "$og"), OpenBLAS $(core_tag "$c") $(fmt "$bg") GFLOP/s: faster $(faster "$og" "$bg" gemm.c OpenBLAS rate)"
    done
  done
fi
if want model || want torch; then
  printf '%-52s %10s %9s %7s %12s\n' "training step fwd+bwd (no AdamW)" "tokens/s" "GFLOP/s" "%sgemm" "gen tokens/s"
  for p in $PRESETS; do
    for c in "${CORES[@]}"; do
      tk=$(val "model.$c.$p.train.tokens_per_s")
      [ -z "$tk" ] && continue
      gf=$(val "model.$c.$p.train.gflops")
      lim=$(val "sgemm.$c.$p.step.gflops")
      pct=$(awk -v a="$gf" -v b="$lim" 'BEGIN { if (a == "" || b == "") print "-"; else printf "%.0f", 100 * a / b }')
      path=$(val "model.$c.gemm_default"); path=${path:-OpenBLAS} # the product's default GEMM
      printf '%-52s %10s %9s %7s %12s\n' "ours $p, $path $(core_tag "$c")" "$(fmt "$tk" 0)" "$(fmt "$gf")" "$pct" \
        "$(fmt "$(val "model.$c.$p.generate.tokens_per_s")" 0)"
    done
    for s in default best; do
      tk=$(val "torch.$s.$p.train_tok_s")
      [ -z "$tk" ] && continue
      name=$s; [ "$s" = best ] && ! best_ok "$p" && name="best-REJECTED"
      printf '%-52s %10s %9s %7s %12s\n' "PyTorch $p $name $(torch_tag "$s" "$p")" "$(fmt "$tk" 0)" \
        "$(fmt "$(val "torch.$s.$p.train_gflops")")" "" "$(fmt "$(val "torch.$s.$p.gen_tok_s")" 0)"
    done
    if want torch && ! best_ok "$p"; then
      echo "  PyTorch best, $p: $BEST_WHY: no ratio against it"
      [ -z "$BEST_MISSING" ] && not_measured+=("PyTorch best setup, $p: $BEST_WHY")
    fi
    for c in "${CORES[@]}"; do
      for s in best default; do
        [ "$s" = best ] && ! best_ok "$p" && continue
        ours_t=$(val "model.$c.$p.train.tokens_per_s"); th_t=$(val "torch.$s.$p.train_tok_s")
        [ -z "$ours_t" ] || [ -z "$th_t" ] && continue
        printf '  ratio ours %s / PyTorch-%s %s, %s: train %s, generate %s (>1: ours faster)\n' \
          "$(core_tag "$c")" "$s" "$(torch_tag "$s" "$p")" "$p" "$(ratio "$ours_t" "$th_t")" \
          "$(ratio "$(val "model.$c.$p.generate.tokens_per_s")" "$(val "torch.$s.$p.gen_tok_s")")"
      done
    done
    # which PyTorch setup was faster here: "best" names the setup, not the outcome (on a
    # loaded machine OpenMP's spinning threads can make it the slower one)
    if best_ok "$p" && [ -n "$(val "torch.default.$p.train_tok_s")" ]; then
      printf '  PyTorch, %s: the faster setup in this run: train %s, generate %s\n' "$p" \
        "$(faster "$(val "torch.best.$p.train_tok_s")" "$(val "torch.default.$p.train_tok_s")" best default rate)" \
        "$(faster "$(val "torch.best.$p.gen_tok_s")" "$(val "torch.default.$p.gen_tok_s")" best default rate)"
    fi
    # the step with gemm.c and with OpenBLAS for the same products: both where both exist
    for c in "${CORES[@]}"; do
      ob=$(val "model.$c.$p.train_openblas_gemm.ms"); og=$(val "model.$c.$p.train_gemm_c.ms")
      [ -z "$ob" ] && continue
      if [ -n "$og" ]; then
        printf '  training step, %s: gemm.c %s ms, OpenBLAS %s for the same products %s ms: faster %s\n' \
          "$p" "$(fmt "$og")" "$(core_tag "$c")" "$(fmt "$ob")" "$(faster "$og" "$ob" gemm.c OpenBLAS)"
      else
        printf '  training step, %s: OpenBLAS %s %s ms; gemm.c: %s: no ratio\n' \
          "$p" "$(core_tag "$c")" "$(fmt "$ob")" "${GEMM_ABSENT:-no result}"
      fi
    done
    # generation runs our own kernels, not OpenBLAS: no core on this line
    for c in "${CORES[@]}"; do
      pb=$(val "model.$c.$p.decode.pct_of_bandwidth")
      [ -z "$pb" ] && continue
      printf '  decode, %s (run %s): %s ms per token step, %s%% of the bound of reading its %s MB of weights at %s GB/s\n' \
        "$p" "$c" "$(fmt "$(val "model.$c.$p.decode.step_ms")")" "$(fmt "$pb" 0)" \
        "$(fmt "$(val "model.$c.$p.decode.weight_mb")" 0)" "$(fmt "$(val "model.$c.$p.decode.read_gbs")" 1)"
    done
    # the full training step: fwd+bwd plus the optimizer (ours: grad-norm clip + AdamW;
    # PyTorch: optimizer.step(), timed alone; its default setup skips it at 124M)
    for s in best default; do
      [ "$s" = best ] && ! best_ok "$p" && continue
      ad=$(val "torch.$s.$p.adamw_ms")
      [ -z "$ad" ] && continue
      tf=$(awk -v a="$(val "torch.$s.$p.train_ms")" -v b="$ad" 'BEGIN { if (a == "" || b == "") print ""; else printf "%.3f", a + b }')
      for c in "${CORES[@]}"; do
        of=$(val "model.$c.$p.step_full.ms"); oo=$(val "model.$c.$p.optim.ms")
        [ -z "$of" ] && continue
        printf '  full step fwd+bwd+AdamW, %s: ours %s %s ms (optimizer %s ms), PyTorch-%s %s %s ms (AdamW %s ms): ratio %s (>1: ours faster)\n' \
          "$p" "$(core_tag "$c")" "$(fmt "$of")" "$(fmt "$oo")" "$s" "$(torch_tag "$s" "$p")" "$(fmt "$tf")" "$(fmt "$ad")" "$(ratio "$tf" "$of")"
      done
      break # against the best setup where it counts, else the default
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
if want lmchunk; then
  printf 'LM head chunks, SFT step at V=151936, width 576, %s layers, 4 x 512 tokens, OpenBLAS %s: peak RSS chunked %s MB vs all rows %s MB (%s); step %s ms vs %s ms (%s)\n' \
    "$(val lmchunk.layers)" "$(val lmchunk.core)" "$(fmt "$(val lmchunk.chunked.peak_rss_mb)" 0)" \
    "$(fmt "$(val lmchunk.full.peak_rss_mb)" 0)" "$(ratio "$(val lmchunk.chunked.peak_rss_mb)" "$(val lmchunk.full.peak_rss_mb)")" \
    "$(fmt "$(val lmchunk.chunked.step_ms)" 0)" "$(fmt "$(val lmchunk.full.step_ms)" 0)" \
    "$(ratio "$(val lmchunk.chunked.step_ms)" "$(val lmchunk.full.step_ms)")"
fi
if want rollout; then
  for p in $PRESETS; do
    printf 'rollouts %s: GRPO group of 8, shared prefill %s vs %s rollouts/s (%sx); random lengths, in-flight %s vs static %s rollouts/s (%sx; %sx fewer passes); medians of alternating pairs\n' \
      "$p" "$(fmt "$(val "rollout.$p.group8.shared.rollouts_per_s")" 2)" \
      "$(fmt "$(val "rollout.$p.group8.unshared.rollouts_per_s")" 2)" "$(fmt "$(val "rollout.$p.group8.speedup")" 2)" \
      "$(fmt "$(val "rollout.$p.randlen.inflight.rollouts_per_s")" 2)" \
      "$(fmt "$(val "rollout.$p.randlen.static.rollouts_per_s")" 2)" "$(fmt "$(val "rollout.$p.randlen.speedup")" 2)" \
      "$(fmt "$(val "rollout.$p.randlen.pass_ratio")" 2)"
    printf 'scoring %s (reward server): GRPO group of 8, reference log-probs + reward-model score, prompt once through the KV caches %s vs batched forward %s rollouts/s (%sx)\n' \
      "$p" "$(fmt "$(val "rollout.$p.score8.shared.rollouts_per_s")" 2)" \
      "$(fmt "$(val "rollout.$p.score8.forward.rollouts_per_s")" 2)" "$(fmt "$(val "rollout.$p.score8.speedup")" 2)"
  done
fi
if want recompute; then
  printf 'Activation recomputation, SFT step, GPT-2 tiny shape, %s layers, 1 x %s tokens, OpenBLAS %s: peak RSS on %s MB vs off %s MB (%s); step %s ms vs %s ms (%s)\n' \
    "$(val recompute.layers)" "$(val recompute.tokens)" "$(val recompute.core)" \
    "$(fmt "$(val recompute.on.peak_rss_mb)" 0)" "$(fmt "$(val recompute.off.peak_rss_mb)" 0)" \
    "$(ratio "$(val recompute.on.peak_rss_mb)" "$(val recompute.off.peak_rss_mb)")" \
    "$(fmt "$(val recompute.on.step_ms)" 0)" "$(fmt "$(val recompute.off.step_ms)" 0)" \
    "$(ratio "$(val recompute.on.step_ms)" "$(val recompute.off.step_ms)")"
fi
if want lora; then
  printf 'LoRA rank 16 all-linear vs full fine-tuning, smol shape, 1 x 128 tokens, OpenBLAS %s: peak RSS %s MB vs %s MB (%s); step %s ms vs %s ms (%s); sync per update %s vs %s bytes (%s%%; attention-only %s%%, q_proj+v_proj %s%%)\n' \
    "$(val lora.core)" "$(fmt "$(val lora.lora.peak_rss_mb)" 0)" "$(fmt "$(val lora.full.peak_rss_mb)" 0)" \
    "$(ratio "$(val lora.lora.peak_rss_mb)" "$(val lora.full.peak_rss_mb)")" \
    "$(fmt "$(val lora.lora.step_ms)" 0)" "$(fmt "$(val lora.full.step_ms)" 0)" \
    "$(ratio "$(val lora.lora.step_ms)" "$(val lora.full.step_ms)")" \
    "$(val lora.lora.sync_bytes)" "$(val lora.full.sync_bytes)" "$(val lora.sync_pct.all_linear)" \
    "$(val lora.sync_pct.attn)" "$(val lora.sync_pct.qv)"
fi
if want zero; then
  for k in 1 2 4; do
    for z in 0 1 2; do
      key=zero.$ZPRESET.np$k.z$z
      printf 'optim.zero=%s, %s learner rank(s), %s: optimizer %s MiB per rank, peak RSS %s MiB (largest rank), optimizer step %s ms\n' \
        "$z" "$k" "$ZPRESET" "$(fmt "$(val "$key.opt_mb")")" "$(fmt "$(val "$key.peak_rss_mb")" 0)" \
        "$(fmt "$(val "$key.step_ms")" 0)"
    done
  done
fi
if want lorappo; then
  for n in ppo_lora_default ppo_lora_sft grpo_lora; do
    [ -z "$(val "lora_ppo.$n.learner_peak_rss_mb")" ] && continue
    printf 'LoRA rank 16 online job, smol, %s: learner %s MB + reward server %s MB = %s%% of full fine-tuning (target <= 50%%); sync %s bytes per update\n' \
      "$n" "$(val "lora_ppo.$n.learner_peak_rss_mb")" "$(val "lora_ppo.$n.reward_server_peak_rss_mb")" \
      "$(val "lora_ppo.$n.learner_server_share")" "$(val "lora_ppo.$n.sync_bytes_per_update")"
  done
fi
if want decode; then
  for p in gpt2 smol; do
    printf 'decode %s, batch 8: fp32 weights %s ms per step (%s%% of its bandwidth bound), bf16 (%s) %s ms (%s%% of its bound, half the bytes): %sx; one process\n' \
      "$p" "$(fmt "$(val "decode.$p.f32.step_ms")" 2)" "$(fmt "$(val "decode.$p.f32.pct_of_bound")" 0)" \
      "$(val "decode.$p.bf16_kernel")" \
      "$(fmt "$(val "decode.$p.bf16.step_ms")" 2)" "$(fmt "$(val "decode.$p.bf16.pct_of_bound")" 0)" \
      "$(fmt "$(val "decode.$p.bf16_speedup")" 2)"
  done
  printf 'decode gpt2, batch 8, step at cache position 128 / 512 / 1024 / 2048: %s / %s / %s / %s ms\n' \
    "$(fmt "$(val decode.gpt2.pos128.step_ms)" 2)" "$(fmt "$(val decode.gpt2.pos512.step_ms)" 2)" \
    "$(fmt "$(val decode.gpt2.pos1024.step_ms)" 2)" "$(fmt "$(val decode.gpt2.pos2048.step_ms)" 2)"
fi
if want smol; then
  echo "smol (llama, SmolLM2-135M shape, random weights; targets: train >= 1.3x PyTorch, decode >= 3x PyTorch and >= 50% of the bound):"
  printf '  %-50s %12s %14s %14s\n' "" "train tok/s" "gen tok/s" "decode ms/step"
  printf '  %-50s %12s %14s %14s\n' "ours [$(val model.core) $([ -n "$ENV_CORE" ] && echo preset || echo auto)]" \
    "$(fmt "$(val model.smol.train.tokens_per_s)" 0)" "$(fmt "$(val model.smol.generate.tokens_per_s)" 0)" \
    "$(fmt "$(val model.smol.decode.step_ms)" 2)"
  for s in default best; do
    [ -z "$(val "torch.$s.smol.train_tok_s")" ] && continue
    name=$s
    if [ "$s" = best ] && { [ "$(val torch.best.smol.tcmalloc)" != 1 ] || [ "$(val torch.best.smol.blas_build)" != openmp ]; }; then
      name=best-REJECTED
    fi
    printf '  %-50s %12s %14s %14s\n' "PyTorch $name $(torch_tag "$s" smol) gen:$(val "torch.$s.smol.gen_variant")" \
      "$(fmt "$(val "torch.$s.smol.train_tok_s")" 0)" "$(fmt "$(val "torch.$s.smol.gen_tok_s")" 0)" \
      "$(fmt "$(val "torch.$s.smol.decode_step_ms")" 2)"
    [ "$name" = best-REJECTED ] && { echo "  PyTorch best, smol: the setup did not take: no ratio against it"; continue; }
    printf '  ratio ours / PyTorch-%s, smol: train %s, generate %s, decode step %s (>1: ours faster)\n' "$s" \
      "$(ratio "$(val model.smol.train.tokens_per_s)" "$(val "torch.$s.smol.train_tok_s")")" \
      "$(ratio "$(val model.smol.generate.tokens_per_s)" "$(val "torch.$s.smol.gen_tok_s")")" \
      "$(ratio "$(val "torch.$s.smol.decode_step_ms")" "$(val model.smol.decode.step_ms)")"
  done
  printf '  decode, smol: %s ms per token step at batch 8, %s%% of the bound of reading its %s MB of weights at %s GB/s\n' \
    "$(fmt "$(val model.smol.decode.step_ms)" 2)" "$(fmt "$(val model.smol.decode.pct_of_bandwidth)" 0)" \
    "$(fmt "$(val model.smol.decode.weight_mb)" 0)" "$(fmt "$(val model.smol.decode.read_gbs)" 1)"
fi
if [ -n "$BEST_MISSING" ]; then not_measured+=("PyTorch best setup: $BEST_MISSING"); fi
[ -n "$GEMM_ABSENT" ] && not_measured+=("gemm.c: $GEMM_ABSENT")
for m in "${not_measured[@]+"${not_measured[@]}"}"; do echo "NOT MEASURED: $m"; done
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
  printf '], "not_measured": ['
  first=1
  for f in "${not_measured[@]+"${not_measured[@]}"}"; do
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
