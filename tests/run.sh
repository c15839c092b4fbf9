#!/usr/bin/env bash
# The test runner behind `make test` / `make asan`: runs every build/tests/test_* program
# and every tests/t_*.sh script (the end-to-end ones: mpirun launches, CLI tools, resume),
# each under a time limit, and ends with "N passed, N failed"; exit status 1 on any failure.
# Environment: BUILD (default build), TEST_FILTER (substring to select tests).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
# Waiting MPI ranks yield the core instead of spinning (ranks outnumber cores in tests).
export OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1
TMPROOT=$(mktemp -d /tmp/rlhf-test.XXXXXX)
export RLHF_TEST_TMP=$TMPROOT
pass=0; fail=0; failed=()
run_one() {
  local name=$1; shift
  local log="$TMPROOT/$name.log" t0=$SECONDS
  if timeout "${TEST_TIMEOUT:-900}" "$@" >"$log" 2>&1; then
    pass=$((pass+1)); printf 'PASS %-32s %4ds\n' "$name" $((SECONDS-t0))
  else
    local rc=$?
    fail=$((fail+1)); failed+=("$name")
    printf 'FAIL %-32s %4ds (exit %d)\n' "$name" $((SECONDS-t0)) "$rc"
    tail -n 40 "$log" | sed 's/^/    | /'
  fi
}
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  n=$(basename "$t")
  [ -n "${TEST_FILTER:-}" ] && [[ "$n" != *"$TEST_FILTER"* ]] && continue
  run_one "$n" "$t"
done
for s in tests/t_*.sh; do
  [ -f "$s" ] || continue
  n=$(basename "$s" .sh)
  [ -n "${TEST_FILTER:-}" ] && [[ "$n" != *"$TEST_FILTER"* ]] && continue
  run_one "$n" bash "$s"
done
rm -rf "$TMPROOT"
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
