#!/usr/bin/env bash
# The test runner behind `make test`, `make check`, `make asan` and `make faults`:
#
#   bash tests/run.sh [PASS...]        PASS = plain (the default) | asan
#
# A pass runs every $BUILD/tests/test_* program and every tests/t_*.sh script (the
# end-to-end ones: mpirun launches, CLI tools, resume), each under a time limit, one line
# per suite with its time:
#   plain  the programs in $BUILD (default build/);
#   asan   the same suites on build-asan/ (AddressSanitizer + UBSan; `make asan` and
#          `make test` build it) with the sanitizer options of asan_env below and
#          RLHF_ASAN=1 (a script may scale a long run down, never drop a check). Every
#          report is fatal: an ASan error, a leak that tests/lsan.supp does not match, any
#          UBSan finding ends the program with SIGABRT and fails the suite.
# `make test` runs `plain asan`.
#
# Skips are counted, never silent. A suite that cannot run at all (a program it needs is
# missing, ...) prints a line "SKIP: reason" and exits 77: its result line is SKIP with the
# reason. A suite that passes but could not run some of its parts prints one "SKIP: reason"
# line per part (tests/test.h's TEST_SKIP in the C programs): its PASS line says how many,
# with the reasons below it. Exit 77 without a SKIP line is a failure.
# The output ends with "failed: NAME..." and "skipped: NAME (COUNT)..." (if any), then
# "N passed, N failed, N skipped" over all passes as the very last line (skipped: whole
# suites plus skipped parts of passing suites); exit status 1 on any failure.
# Environment: BUILD (plain pass, default build), ASAN_BUILD (default build-asan),
# TEST_FILTER (substring of the suite names to run), TEST_TIMEOUT (seconds per suite,
# default 1800: it only catches a hung suite, and a passing suite never waits for it, so
# it is set for a 2-core machine that other work keeps busy), TEST_JOBS (suites run at the
# same time, default 2 in both passes: a sequential run keeps 2 cores about half busy, its
# time going to short processes, mpirun launches and the scripts' waits; no suite depends
# on the machine's speed, so sharing the cores changes no result); ASAN_SAN /
# ASAN_OPT (set by the Makefile: the asan build's flags, so that a script's `make` of an
# out-of-date program rebuilds it with them).
set -u
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
# Waiting MPI ranks yield the core instead of spinning (ranks outnumber cores in tests).
export OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1
TMPROOT=$(mktemp -d /tmp/rlhf-test.XXXXXX)
export RLHF_TEST_TMP=$TMPROOT
trap 'rm -rf "$TMPROOT"' EXIT

passes=("$@")
[ ${#passes[@]} -eq 0 ] && passes=(plain)
for p in "${passes[@]}"; do
  case $p in plain|asan) ;; *) echo "tests/run.sh: unknown pass '$p' (plain or asan)" >&2; exit 2 ;; esac
done

# The sanitizer run-time options of the asan pass.
asan_env() {
  export BUILD=${ASAN_BUILD:-build-asan} RLHF_ASAN=1
  # abort_on_error: a report ends the process with SIGABRT, so mpirun ends the whole job.
  # fast_unwind_on_malloc=0: whole allocation stacks through Open MPI, libc (asprintf) and
  # libhdf5, which are built without frame pointers; tests/lsan.supp matches their
  # process-lifetime allocations by library name anywhere in the stack. (The frame-pointer
  # unwinder stops inside libc, and Open MPI's asprintf'd strings would be reported.)
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  # tools/rlhf-run runs `make` for its programs: with this build's flags, never the default
  if [ -n "${ASAN_SAN:-}" ]; then export SAN=$ASAN_SAN OPT=${ASAN_OPT:-}; fi
}

pass=0; fail=0; skip=0; failed=(); nres=0; njobs=1
mkdir "$TMPROOT/res"
: >"$TMPROOT/skipped"   # "NAME: reason", one line per skip, over all passes
# run_one NAME CMD...: one suite, in the background once TEST_JOBS > 1; its result lines
# go to a file RES that collect prints, its verdict to RES.meta ("STATUS NAME NSKIPS").
run_one() {
  local name=$1; shift
  while [ "$(jobs -rp | wc -l)" -ge "$njobs" ]; do wait -n; collect; done
  nres=$((nres+1))
  local res log t0=$SECONDS
  res="$TMPROOT/res/$(printf '%04d' $nres)" log="$TMPROOT/${name//\//_}.log"
  (
    rc=0
    timeout "${TEST_TIMEOUT:-1800}" "$@" >"$log" 2>&1 || rc=$?
    # the reasons of the SKIP lines, at most 200 characters each
    grep -E '^SKIP: ' "$log" | cut -c7-206 >"$res.skips" || true
    nskip=$(wc -l <"$res.skips")
    if [ "$rc" -eq 0 ]; then
      { printf 'PASS %-32s %4ds' "$name" $((SECONDS-t0))
        [ "$nskip" -eq 0 ] && echo || echo ", $nskip skipped:"
        sed 's/^/    - SKIP: /' "$res.skips"; } >"$res.tmp"
      echo "PASS $name $nskip" >"$res.meta"
    elif [ "$rc" -eq 77 ] && [ "$nskip" -gt 0 ]; then
      { printf 'SKIP %-32s %4ds: %s\n' "$name" $((SECONDS-t0)) "$(head -n1 "$res.skips")"
        tail -n +2 "$res.skips" | sed 's/^/    - SKIP: /'; } >"$res.tmp"
      echo "SKIP $name $nskip" >"$res.meta"
    else
      # the script's own verdict ("FAIL: ...") first: a viewer that shows only the top
      # of this block still sees why; then the end of the log
      { printf 'FAIL %-32s %4ds (exit %d%s)\n' "$name" $((SECONDS-t0)) "$rc" \
          "$([ "$rc" -eq 77 ] && echo ': exit 77 without a "SKIP: reason" line')"
        grep -m 3 -E '^FAIL|^==[0-9]+==ERROR|runtime error' "$log" | sed 's/^/    ! /'
        tail -n 40 "$log" | sed 's/^/    | /'; } >"$res.tmp"
      echo "FAIL $name 0" >"$res.meta"
    fi
    mv "$res.tmp" "$res"
  ) &
  [ "$njobs" -gt 1 ] || { wait; collect; }
}
collect() {  # print and count the results that are in, in the order they came
  local r st name n
  for r in "$TMPROOT"/res/[0-9][0-9][0-9][0-9]; do
    [ -f "$r" ] || continue
    cat "$r"
    read -r st name n <"$r.meta"
    case $st in
      PASS) pass=$((pass+1)) ;;
      SKIP) ;;
      *) fail=$((fail+1)); failed+=("$name") ;;
    esac
    if [ "$st" != FAIL ]; then skip=$((skip+n)); sed "s|^|$name: |" "$r.skips" >>"$TMPROOT/skipped"; fi
    mv "$r" "$r.done"
  done
}
run_pass() {  # run_pass PASS: every suite on one build; names get "PASS/" when there are several
  local p=$1 prefix="" t0=$SECONDS p0=$pass f0=$fail s0=$skip t n
  [ ${#passes[@]} -gt 1 ] && prefix="$p/"
  if [ "$p" = asan ]; then asan_env; njobs=${TEST_JOBS:-2}; else export BUILD=${BUILD:-build}; njobs=${TEST_JOBS:-2}; fi
  [ ${#passes[@]} -gt 1 ] && echo "== $p pass: $BUILD/$([ "$p" = asan ] && echo ", AddressSanitizer + UBSan")"
  for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t")
    [ -n "${TEST_FILTER:-}" ] && [[ "$n" != *"$TEST_FILTER"* ]] && continue
    run_one "$prefix$n" "$t"
  done
  for t in tests/t_*.sh; do
    [ -f "$t" ] || continue
    n=$(basename "$t" .sh)
    [ -n "${TEST_FILTER:-}" ] && [[ "$n" != *"$TEST_FILTER"* ]] && continue
    # t_fuzz_smoke builds and runs the fuzz targets as their own sanitizer build, the same
    # in both passes: when the plain pass ran it, the asan pass does not repeat it
    if [ "$p" = asan ] && [ "$n" = t_fuzz_smoke ] && [[ " ${passes[*]} " == *" plain "* ]]; then
      echo "(asan/t_fuzz_smoke: run once, in the plain pass: the fuzz targets are a sanitizer build of their own)"
      continue
    fi
    run_one "$prefix$n" bash "$t"
  done
  wait; collect
  [ ${#passes[@]} -gt 1 ] && printf '== %s pass: %d passed, %d failed, %d skipped in %dm%02ds\n' "$p" \
    $((pass-p0)) $((fail-f0)) $((skip-s0)) $(((SECONDS-t0)/60)) $(((SECONDS-t0)%60))
  return 0
}
for p in "${passes[@]}"; do
  # each pass in a subshell: the asan environment must not reach the plain pass
  ( pass=0; fail=0; skip=0; failed=(); run_pass "$p"
    echo "$pass $fail $skip ${failed[*]}" >"$TMPROOT/$p.result" )
  read -r np nf ns nfailed <"$TMPROOT/$p.result" || { np=0; nf=1; ns=0; nfailed="$p(runner)"; }
  pass=$((pass+np)); fail=$((fail+nf)); skip=$((skip+ns))
  [ -n "$nfailed" ] && read -r -a more <<<"$nfailed" && failed+=("${more[@]}")
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
# (the reasons are on the suites' result lines above)
[ "$skip" -gt 0 ] && echo "skipped: $(cut -d: -f1 "$TMPROOT/skipped" | uniq -c | awk '{ printf "%s%s (%d)", (NR > 1 ? ", " : ""), $2, $1 }')"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
